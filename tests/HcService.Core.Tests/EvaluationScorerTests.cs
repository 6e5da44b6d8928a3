using System.Text;
using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Contract.Evaluation;
using HcService.Core.Evaluation;
using HcService.Core.Model;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>
/// The batched scorer against a by-hand reference: each request run alone through the model on its own
/// (context + continuation) bytes, plain log_softmax and a loop over the continuation positions, on real fixture items.
/// </summary>
public class EvaluationScorerTests
{
    const int MaxSeqLen = 160;   // short enough that the BoolQ and some HellaSwag requests are truncated on the left

    static LanguageModel ByteModel(ConnectionConfig connection) =>
        TestModels.Build(TestModels.Tiny(connection) with { Vocab = 256, EmbeddingSize = 256, MaxSeqLen = MaxSeqLen }, seed: 3);

    /// <summary>A few items of each shape: ARC (4-5 choices), PIQA, HellaSwag, COPA, BoolQ, MMLU and two WinoGrande
    /// items (partial scoring).</summary>
    static (List<EvalItem> MultipleChoice, List<EvalItem> Partial) RealItems()
    {
        var tasks = new EvalTasks(RepoPaths.DataRoot);
        List<EvalItem> Take(string name, int n) => [.. tasks.Load(new(name, Limit: n)).Items];
        var mc = new List<EvalItem>();
        foreach (var (name, n) in new[] { ("arc_easy", 2), ("arc_challenge", 1), ("piqa", 1), ("hellaswag", 2), ("copa", 2), ("boolq", 1), ("mmlu", 1) })
            mc.AddRange(Take(name, n));
        return (mc, Take("winogrande", 2));
    }

    /// <summary>The reference: one request, unbatched. The model reads full[-(L+1):][:-1] of the UTF-8 bytes of
    /// context + continuation; the continuation's log-probabilities are summed in double.</summary>
    static double ReferenceLogLikelihood(LanguageModel model, EvalRequest r)
    {
        Assert.False(char.IsWhiteSpace(r.Context[^1]), "the reference assumes no trailing whitespace in the context");
        var full = Encoding.UTF8.GetBytes(r.Context + r.Continuation).Select(b => (long)b).ToArray();
        var cont = Encoding.UTF8.GetBytes(r.Continuation).Length;
        var window = full.Length - 1 > MaxSeqLen ? full[^(MaxSeqLen + 1)..] : full;
        var input = window[..^1];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = model.Forward(tensor(input, [1, input.Length])).Logits;
        var V = (int)logits.shape[^1];
        var logp = nn.functional.log_softmax(logits, -1).data<float>().ToArray();
        var sum = 0.0;
        for (var pos = input.Length - Math.Min(cont, input.Length); pos < input.Length; pos++)
            sum += logp[pos * V + (int)window[pos + 1]];
        return sum;
    }

    static int ArgMax(IReadOnlyList<double> xs) => xs.Select((x, i) => (x, i)).Aggregate((a, b) => b.x > a.x ? b : a).i;

    [Theory]
    [InlineData("residual")]
    [InlineData("dynamic-hc")]
    public void BatchedScorerEqualsUnbatchedReferenceOnRealItems(string connection)
    {
        var model = ByteModel(connection == "residual" ? ConnectionConfig.Residual : ConnectionConfig.DynamicHc(2));
        var (mc, partial) = RealItems();
        var requests = mc.Concat(partial).SelectMany(i => i.Requests).ToList();
        var reference = requests.Select(r => ReferenceLogLikelihood(model, r)).ToArray();

        // Batches of 3 after sorting by length: more distinct lengths than batches, so some batch mixes lengths.
        var lengths = requests.Select(r => Encoding.UTF8.GetByteCount(r.Context + r.Continuation)).ToList();
        Assert.True(lengths.Distinct().Count() > (requests.Count + 2) / 3);
        Assert.Contains(lengths, l => l - 1 > MaxSeqLen);   // some requests are truncated ...
        Assert.Contains(lengths, l => l - 1 <= MaxSeqLen);  // ... and some are not

        foreach (var batch in new[] { 1, 3, 64 })
        {
            var scores = new LogLikelihoodScorer(model, new ByteTextTokenizer(), batch).Score(requests);
            for (var i = 0; i < requests.Count; i++)
                Assert.True(Math.Abs(scores[i].LogLikelihood - reference[i]) < 1e-4,
                    $"batch {batch}, request {i}: scorer {scores[i].LogLikelihood} vs reference {reference[i]}");
            Assert.Equal(lengths.Count(l => l - 1 > MaxSeqLen), scores.Count(s => s.Truncated));
        }

        // acc and acc_norm by hand from the reference log-likelihoods; acc_norm divides by the choice's characters.
        var scorer = new LogLikelihoodScorer(model, new ByteTextTokenizer(), 3);
        var at = 0;
        double correct = 0, correctNorm = 0;
        foreach (var item in mc)
        {
            var ll = reference[at..(at += item.Requests.Count)];
            var chars = item.Requests.Select(r => r.Continuation[1..].EnumerateRunes().Count()).ToArray();
            if (ArgMax(ll) == item.Gold) correct++;
            if (ArgMax([.. ll.Select((x, i) => x / chars[i])]) == item.Gold) correctNorm++;
        }
        var result = scorer.Evaluate("mixed", mc);
        Assert.Equal(mc.Count, result.Items);
        Assert.Equal(correct / mc.Count, result.Metrics[EvalMetrics.Acc], 12);
        Assert.Equal(correctNorm / mc.Count, result.Metrics[EvalMetrics.AccNorm], 12);

        // WinoGrande: both options are scored on the same continuation tokens; acc only.
        var wg = scorer.Evaluate("winogrande", partial);
        var wgCorrect = partial.Select((item, k) => ArgMax(reference[(at + 2 * k)..(at + 2 * k + 2)]) == item.Gold ? 1.0 : 0.0).Sum();
        Assert.Equal(wgCorrect / partial.Count, wg.Metrics[EvalMetrics.Acc], 12);
        Assert.False(wg.Metrics.ContainsKey(EvalMetrics.AccNorm));
        Assert.All(partial, item => Assert.Equal(item.Requests[0].Continuation, item.Requests[1].Continuation));
    }

    /// <summary>lm-eval's tokenisation with a BPE vocabulary: trailing whitespace of the context moves into the
    /// continuation (GPT-2 encodes " yes" as one token, "Answer: " + "yes" would be two), and an empty context reads as
    /// the end-of-text token.</summary>
    [Fact]
    public void Gpt2ContextWhitespaceMovesIntoTheContinuationAndAnEmptyContextReadsEndOfText()
    {
        var gpt2 = new Gpt2TextTokenizer();
        var model = TestModels.Build(TestModels.Tiny(ConnectionConfig.Residual) with { Vocab = 50257, EmbeddingSize = 50304, MaxSeqLen = 64 });
        var scorer = new LogLikelihoodScorer(model, gpt2, 4);
        var s = scorer.Score([new("Question: is water wet?\nAnswer: ", "yes"), new("Question: is water wet?\nAnswer:", " yes"), new("", "The end.")]);
        Assert.Single(gpt2.Encode(" yes"));
        Assert.Equal(1, s[0].ContinuationTokens);
        Assert.Equal(s[1].LogLikelihood, s[0].LogLikelihood, 9);

        var endOfText = gpt2.Encode("The end.").Prepend(gpt2.EndOfText).Select(t => (long)t).ToArray();
        using var _ = no_grad();
        var logp = nn.functional.log_softmax(model.Forward(tensor(endOfText[..^1], [1, endOfText.Length - 1])).Logits, -1);
        var expected = Enumerable.Range(0, endOfText.Length - 1).Sum(t => (double)logp[0, t, endOfText[t + 1]].item<float>());
        Assert.Equal(endOfText.Length - 1, s[2].ContinuationTokens);
        Assert.True(Math.Abs(expected - s[2].LogLikelihood) < 1e-4, $"{s[2].LogLikelihood} vs {expected}");
    }

    [Fact]
    public void ScorerRestoresTrainingModeAndRejectsATooLargeVocabulary()
    {
        var model = ByteModel(ConnectionConfig.Residual);
        model.train();
        new LogLikelihoodScorer(model, new ByteTextTokenizer(), 2).Score([new("Question: why?\nAnswer:", " because")]);
        Assert.True(model.training);

        var small = TestModels.Build(TestModels.Tiny(ConnectionConfig.Residual));   // 64 embedding rows < 256 bytes
        var ex = Assert.Throws<ConfigException>(() => new LogLikelihoodScorer(small, new ByteTextTokenizer(), 0));
        Assert.Equal(["batchSize", "tokenizer"], ex.Errors.Select(e => e.Field));
    }

    [Fact]
    public void PaperAverageUsesAccNormWhereLmEvalReportsItAndNamesMissingTasks()
    {
        var results = EvalMetrics.PaperAverageTasks.Select((t, i) => new TaskResult(t.Task,
            new Dictionary<string, double> { [EvalMetrics.Acc] = 0.1 * i, [EvalMetrics.AccNorm] = 0.5 }, 10)).ToList();
        // acc_norm (0.5) for the five ARC-Easy/HellaSwag/PIQA/SciQ/OBQA tasks, acc for copa (0.5) and winogrande (0.6).
        Assert.Equal((5 * 0.5 + 0.5 + 0.6) / 7, EvalMetrics.PaperAverage(results), 12);
        Assert.Equal(["arc_easy", "hellaswag", "piqa", "sciq", "openbookqa", "copa", "winogrande"],
            EvalMetrics.PaperAverageTasks.Select(t => t.Task));

        var ex = Assert.Throws<ArgumentException>(() => EvalMetrics.PaperAverage(results.Where(r => r.Task != "hellaswag")));
        Assert.Contains("missing: hellaswag.acc_norm", ex.Message);
    }
}
