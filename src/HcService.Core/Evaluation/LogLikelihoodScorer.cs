using HcService.Contract.Evaluation;
using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Evaluation;

// Axes: B requests in a batch, T positions, V vocabulary.

/// <summary>The log-likelihood of one request's continuation.</summary>
/// <param name="LogLikelihood">Sum over the continuation tokens of log p(token | everything before it).</param>
/// <param name="ContinuationTokens">Tokens summed (fewer than the continuation's only when it alone exceeds the window).</param>
/// <param name="Truncated">The request exceeded the model's sequence length and was cut on the left.</param>
public sealed record RequestScore(double LogLikelihood, int ContinuationTokens, bool Truncated);

/// <summary>
/// Zero-shot multiple-choice scoring by log-likelihood, as lm-evaluation-harness does it for a causal LM:
/// <list type="number">
/// <item>tokenise: trailing whitespace of the context moves to the front of the continuation; the continuation's
/// tokens are those of encode(context + continuation) after the first len(encode(context)); an empty context reads
/// as the end-of-text token;</item>
/// <item>the model reads (context + continuation) without its last token, truncated on the left to maxSeqLen, and the
/// continuation's log-probabilities are read at the positions that predict it;</item>
/// <item>requests are sorted by length (longest first) and right-padded into batches: attention is causal and the
/// rotary positions start at 0 for every row, so padding after a request cannot change its log-probabilities.</item>
/// </list>
/// </summary>
public sealed class LogLikelihoodScorer
{
    readonly LanguageModel model;
    readonly ITextTokenizer tokenizer;
    readonly int batchSize;

    public LogLikelihoodScorer(LanguageModel model, ITextTokenizer tokenizer, int batchSize)
    {
        var errors = new List<ConfigError>();
        if (batchSize < 1) errors.Add(new("batchSize", batchSize, "an integer >= 1"));
        if (tokenizer.VocabSize > model.Config.EmbeddingSize)
            errors.Add(new("tokenizer", tokenizer.Name, $"a tokenizer whose vocabulary ({tokenizer.VocabSize}) fits the model's embedding ({model.Config.EmbeddingSize} rows)"));
        if (errors.Count > 0) throw new ConfigException(errors);
        (this.model, this.tokenizer, this.batchSize) = (model, tokenizer, batchSize);
    }

    /// <summary>Scores every item of the task: acc always, acc_norm for items that are not partially scored.</summary>
    public TaskResult Evaluate(EvalTask task) => Evaluate(task.Name, task.Items);

    public TaskResult Evaluate(string taskName, IReadOnlyList<EvalItem> items)
    {
        if (items.Count == 0) throw new ArgumentException($"task '{taskName}' has no items to score");
        var scores = Score([.. items.SelectMany(i => i.Requests)]);
        int correct = 0, correctNorm = 0, normItems = 0, at = 0;
        foreach (var item in items)
        {
            var ll = new double[item.Requests.Count];
            for (var i = 0; i < ll.Length; i++) ll[i] = scores[at++].LogLikelihood;
            if (ArgMax(ll) == item.Gold) correct++;
            if (item.NormLengths is { } lengths)
            {
                normItems++;
                // lm-eval divides by len(choice); an empty choice (length 0) would give +-inf there too.
                if (ArgMax([.. ll.Select((x, i) => x / lengths[i])]) == item.Gold) correctNorm++;
            }
        }
        var metrics = new SortedDictionary<string, double>(StringComparer.Ordinal) { [EvalMetrics.Acc] = (double)correct / items.Count };
        if (normItems == items.Count) metrics[EvalMetrics.AccNorm] = (double)correctNorm / items.Count;
        return new(taskName, metrics, items.Count, scores.Count(s => s.Truncated));
    }

    /// <summary>The log-likelihood of every request, in request order, computed in batches of <c>batchSize</c>
    /// requests (one forward pass each) under no_grad with the model in eval mode (restored afterwards).</summary>
    public IReadOnlyList<RequestScore> Score(IReadOnlyList<EvalRequest> requests)
    {
        var prepared = requests.Select(Prepare).ToArray();
        var scores = new RequestScore[requests.Count];
        var order = Enumerable.Range(0, prepared.Length).OrderByDescending(i => prepared[i].Input.Length).ToArray();
        var wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            var device = model.parameters().First().device;
            foreach (var chunk in order.Chunk(batchSize))
            {
                var lls = ScoreBatch([.. chunk.Select(i => prepared[i])], device);
                for (var k = 0; k < chunk.Length; k++)
                {
                    var p = prepared[chunk[k]];
                    scores[chunk[k]] = new(lls[k], p.Scored, p.Truncated);
                }
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return scores;
    }

    /// <summary>One request as model input: the tokens read, the tokens predicted at each position (input shifted by
    /// one), and how many of the last positions belong to the continuation.</summary>
    sealed record Prepared(long[] Input, long[] Targets, int Scored, bool Truncated);

    Prepared Prepare(EvalRequest r)
    {
        var (context, continuation) = (r.Context, r.Continuation);
        var spaces = context.Length - context.TrimEnd().Length;
        if (spaces > 0) (context, continuation) = (context[..^spaces], context[^spaces..] + continuation);
        IReadOnlyList<int> ctx, cont;
        if (context.Length == 0) (ctx, cont) = ([tokenizer.EndOfText], tokenizer.Encode(continuation));
        else
        {
            ctx = tokenizer.Encode(context);
            var whole = tokenizer.Encode(context + continuation);
            cont = whole.Count > ctx.Count ? [.. whole.Skip(ctx.Count)] : tokenizer.Encode(continuation);
        }
        if (cont.Count == 0) throw new ArgumentException($"continuation '{r.Continuation}' encodes to no tokens");
        var full = ctx.Concat(cont).Select(t => (long)t).ToArray();
        var window = Math.Min(full.Length - 1, model.Config.MaxSeqLen);   // positions read
        var start = full.Length - 1 - window;
        return new(full[start..^1], full[(start + 1)..], Math.Min(cont.Count, window), start > 0);
    }

    /// <summary>One forward pass over right-padded requests; returns each row's summed continuation log-probability.</summary>
    double[] ScoreBatch(Prepared[] batch, Device device)
    {
        using var scope = NewDisposeScope();
        int B = batch.Length, T = batch.Max(p => p.Input.Length);
        var tokens = new long[B * T];
        var targets = new long[B * T];
        var mask = new double[B * T];
        for (var b = 0; b < B; b++)
        {
            var p = batch[b];
            Array.Copy(p.Input, 0, tokens, b * T, p.Input.Length);
            Array.Copy(p.Targets, 0, targets, b * T, p.Targets.Length);
            for (var t = p.Input.Length - p.Scored; t < p.Input.Length; t++) mask[b * T + t] = 1;
        }
        var tokens_BT = tensor(tokens, [B, T], device: device);
        var targets_BT = tensor(targets, [B, T], device: device);
        var mask_BT = tensor(mask, [B, T], device: device);
        var logits_BTV = model.Forward(tokens_BT).Logits.to_type(ScalarType.Float32);
        // log_softmax at the targets only: logit - logsumexp, without materialising a second [B, T, V] tensor.
        var logp_BT = logits_BTV.gather(2, targets_BT.unsqueeze(-1)).squeeze(-1) - logits_BTV.logsumexp(-1);
        var ll_B = (logp_BT.to_type(ScalarType.Float64) * mask_BT).sum(1);
        return ll_B.cpu().data<double>().ToArray();
    }

    static int ArgMax(double[] xs)
    {
        var best = 0;
        for (var i = 1; i < xs.Length; i++)
            if (xs[i] > xs[best]) best = i;
        return best;
    }
}
