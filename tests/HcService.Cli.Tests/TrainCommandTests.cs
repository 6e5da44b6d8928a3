using System.Text.Json;
using HcService.Contract.Jobs;
using HcService.Core.Model;
using HcService.Core.Training;
using TorchSharp;

namespace HcService.Cli.Tests;

/// <summary>`hc train` as a user runs it: real child processes, the shipped corpus, files on disk.</summary>
public class TrainCommandTests
{
    static readonly string DataRoot = RepoPaths.DataRoot;

    // Tiny DHC x4 with dropout, so that exact resume also depends on the restored RNG state.
    const string Spec = """
        {
          "model": { "preset": "tiny", "overrides": { "dropout": 0.1 } },
          "architecture": "dense",
          "connection": { "type": "dynamic-hc", "rate": 4 },
          "training": { "tokenBudget": 40960, "seed": 3, "evalInterval": "20480", "evalTokens": "8K", "checkpointInterval": 10240 }
        }
        """;

    /// <summary>With every recompute mode (what backward keeps changes, never what it computes).</summary>
    [Theory]
    [InlineData("none")]
    [InlineData("hc")]
    [InlineData("block")]
    public void ResumedInANewProcessEndsBitwiseEqualToAnUninterruptedRun(string recompute)
    {
        var spec = Spec.Replace("\"seed\": 3,", $"\"seed\": 3, \"recompute\": \"{recompute}\",");
        Assert.Contains("recompute", spec);
        var specPath = WriteSpec(spec);
        var straight = RepoPaths.TempDir("straight");
        var interrupted = RepoPaths.TempDir("interrupted");

        var a = HcProcess.Run("train", "--spec", specPath, "--data-root", DataRoot, "--out", straight);
        Assert.True(a.ExitCode == 0, a.Stdout + a.Stderr);
        Assert.Contains("succeeded at step 40", a.Stdout);

        var b1 = HcProcess.Run("train", "--spec", specPath, "--data-root", DataRoot, "--out", interrupted, "--stop-after-step", "17");
        Assert.True(b1.ExitCode == 5, b1.Stdout + b1.Stderr);   // ExitCodes.StoppedAsAsked
        Assert.Contains("stopped after step 17", b1.Stdout);
        var b2 = HcProcess.Run("train", "--spec", specPath, "--data-root", DataRoot, "--out", interrupted);
        Assert.True(b2.ExitCode == 0, b2.Stdout + b2.Stderr);
        Assert.Contains("resumed from ckpt-000000017.hcckpt: step 17", b2.Stdout);

        // The same loss at every step, to the last bit (the last record per step: a resumed run logs each step once here).
        var lossA = StepLosses(straight);
        var lossB = StepLosses(interrupted);
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), lossA.Keys.Order());
        Assert.Equal(lossA.OrderBy(kv => kv.Key), lossB.OrderBy(kv => kv.Key));

        // The same final weights, bitwise.
        var plan = JobPlan.Resolve(JobSpec.Parse(spec));
        Assert.Equal(FinalWeights(straight, plan), FinalWeights(interrupted, plan));

        // And the run learned: validation loss on each held-out set ends below its initial value.
        foreach (var set in new[] { "valid-austen-bytes", "valid-wikitext-bytes" })
        {
            var curve = Records(straight, "validation").Where(v => v.GetProperty("dataset").GetString() == set)
                .Select(v => (Step: v.GetProperty("step").GetInt64(), Loss: v.GetProperty("loss").GetDouble())).ToList();
            Assert.Equal([0L, 20L, 40L], curve.Select(c => c.Step));
            Assert.True(curve[^1].Loss < curve[0].Loss - 1.0, $"{set}: {curve[0].Loss:F3} -> {curve[^1].Loss:F3}");
        }
    }

    /// <summary>Each connection type of the HC family trains on the shipped corpus from the command line: validation loss
    /// falls by more than a nat in 40K tokens, and the stream-mixing ones record their composite gain.</summary>
    [Theory]
    [InlineData("""{ "type": "frac", "fractions": 4 }""", false)]
    [InlineData("""{ "type": "mhc", "rate": 4 }""", true)]
    [InlineData("""{ "type": "mhc-lite", "rate": 4 }""", true)]
    public void TheHcFamilyTrainsFromTheCommandLine(string connection, bool mixesStreams)
    {
        var spec = WriteSpec($$"""
            { "model": { "preset": "tiny" }, "architecture": "dense", "connection": {{connection}},
              "training": { "tokenBudget": 40960, "seed": 3, "evalInterval": "40960", "evalTokens": "8K", "checkpointInterval": 40960 } }
            """);
        var dir = RepoPaths.TempDir("family");
        var r = HcProcess.Run("train", "--spec", spec, "--data-root", DataRoot, "--out", dir);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        foreach (var set in new[] { "valid-austen-bytes", "valid-wikitext-bytes" })
        {
            var curve = Records(dir, "validation").Where(v => v.GetProperty("dataset").GetString() == set).Select(v => v.GetProperty("loss").GetDouble()).ToList();
            Assert.True(curve.Count == 2 && curve[^1] < curve[0] - 1.0, $"{connection} {set}: {string.Join(" -> ", curve)}");
        }
        var gains = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Where(l => l.Contains("hc/composite_gain")).ToList();
        Assert.Equal(mixesStreams, gains.Count > 0);
    }

    [Fact]
    public void InvalidSpecExitsWithTwoAndNamesTheField()
    {
        var r = HcProcess.Run("train", "--spec", WriteSpec(Spec.Replace("\"rate\": 4", "\"rate\": -1")), "--data-root", DataRoot, "--out", RepoPaths.TempDir("bad"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("connection.rate = -1: must be an integer in [1, 64]", r.Stderr);

        r = HcProcess.Run("train", "--spec", WriteSpec(Spec.Replace("\"training\": {", "\"data\": { \"train\": \"corpus-gpt2\" }, \"training\": {")),
            "--data-root", DataRoot, "--out", RepoPaths.TempDir("vocab"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("data.train = 'corpus-gpt2': must be a dataset whose tokenizer fits the model's vocabulary 256", r.Stderr);
    }

    /// <summary>One's own text, first try: `hc data prepare` a folder of text into an otherwise empty data root, then
    /// `hc train` a spec that names only that dataset. It validates on the dataset's own held-out tail (the shipped
    /// validation sets are not in this root), and the loss on that tail falls. Too little text is refused with the need.</summary>
    [Fact]
    public void OwnTextTrainsFirstTryAndValidatesOnItsHeldOutTail()
    {
        var text = RepoPaths.TempDir("own-text");
        foreach (var book in new[] { "gutenberg-pg2814-dubliners-joyce.txt", "gutenberg-pg41445-frankenstein-shelley.txt" })
            File.Copy(Path.Combine(RepoPaths.Root, "data", "corpus", "train", book), Path.Combine(text, book));
        var root = RepoPaths.TempDir("own-root");
        var prepared = HcProcess.Run("data", "prepare", text, "--out", Path.Combine(root, "mine"), "--preset", "tiny");
        Assert.True(prepared.ExitCode == 0, prepared.Output);

        var spec = WriteSpec("""
            { "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 4 },
              "training": { "tokenBudget": 30720, "seed": 1, "evalInterval": 30720, "evalTokens": "4K", "checkpointInterval": 30720 },
              "data": { "train": "mine" } }
            """);
        var dir = RepoPaths.TempDir("own-run");
        var r = HcProcess.Run("train", "--spec", spec, "--data-root", root, "--out", dir);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("validating at step 0: mine.heldout", r.Stdout);
        var validation = Records(dir, "validation").ToList();
        Assert.All(validation, v => Assert.Equal("mine.heldout", v.GetProperty("dataset").GetString()));
        var curve = validation.Select(v => (Step: v.GetProperty("step").GetInt64(), Loss: v.GetProperty("loss").GetDouble(), Tokens: v.GetProperty("tokens").GetInt64())).ToList();
        Assert.Equal([0L, 30L], curve.Select(c => c.Step));
        Assert.True(curve[^1].Loss < curve[0].Loss - 1.0, $"{curve[0].Loss:F3} -> {curve[^1].Loss:F3}");

        var tiny = Path.Combine(RepoPaths.TempDir("tiny-text"), "a.txt");
        File.WriteAllText(tiny, string.Concat(Enumerable.Repeat("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. ", 5)));
        var tinyRoot = RepoPaths.TempDir("tiny-root");
        Assert.Equal(0, HcProcess.Run("data", "prepare", tiny, "--out", Path.Combine(tinyRoot, "mine"), "--preset", "tiny").ExitCode);
        r = HcProcess.Run("train", "--spec", spec, "--data-root", tinyRoot, "--out", RepoPaths.TempDir("tiny-run"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("data.train = 'mine': must be a dataset of at least 1290 tokens to hold out a validation tail of at most 1/10 ('mine' has 591), or name validation datasets in data.validation", r.Stderr);
    }

    internal static Dictionary<long, double> StepLosses(string runDir) =>
        Records(runDir, "step").GroupBy(s => s.GetProperty("step").GetInt64())
            .ToDictionary(g => g.Key, g => g.Last().GetProperty("loss").GetDouble());

    internal static IEnumerable<JsonElement> Records(string runDir, string kind) =>
        File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("kind").GetString() == kind);

    internal static byte[] FinalWeights(string runDir, JobPlan plan, long lastStep = 40)
    {
        var store = new CheckpointStore(Path.Combine(runDir, "checkpoints"));
        var (step, path) = store.LatestVerified()!.Value;
        Assert.Equal(lastStep, step);
        using var scope = torch.NewDisposeScope();
        var model = new LanguageModel(plan.Model);
        CheckpointStore.Load(path, model, null);
        return model.parameters().SelectMany(p => p.detach().contiguous().bytes.ToArray()).ToArray();
    }

    internal static string WriteSpec(string json)
    {
        var path = Path.Combine(RepoPaths.TempDir("spec"), "spec.json");
        File.WriteAllText(path, json);
        return path;
    }
}
