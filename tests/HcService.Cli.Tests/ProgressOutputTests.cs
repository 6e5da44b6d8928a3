using System.Text.RegularExpressions;

namespace HcService.Cli.Tests;

/// <summary>`hc train`'s progress as a person sees it: a live bar on a terminal, plain lines in a log.</summary>
public class ProgressOutputTests
{
    static string WriteSpec(int steps = 40)
    {
        var path = Path.Combine(RepoPaths.TempDir("progress-spec"), "spec.json");
        File.WriteAllText(path, $$"""
            { "name": "progress-check", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": {{steps * 1024}}, "seed": 5, "evalInterval": "20480", "evalTokens": "4K", "checkpointInterval": {{steps * 1024}} } }
            """);
        return path;
    }

    [Fact]
    public async Task OnATerminalTrainDrawsABarWithPercentageAndEta()
    {
        // 300 steps: long enough for several frames of the bar (4 a second) however fast the machine is.
        await using var train = HcLiveProcess.StartInTerminal("train", "--spec", WriteSpec(300), "--data-root", RepoPaths.DataRoot, "--out", RepoPaths.TempDir("progress-tty"));
        Assert.Equal(0, await train.WaitForExit(TimeSpan.FromMinutes(4)));
        var lines = train.Output.Split('\n');
        // Frames of the bar: the title, a percentage, an ETA measured once steps ran; the details line under it.
        var frames = lines.Select(l => Regex.Match(l, @"^progress-check .* (\d+)% ETA (\S+)$")).Where(m => m.Success).ToList();
        Assert.True(frames.Count > 0, train.Output);
        Assert.Contains(frames, f => int.Parse(f.Groups[1].Value) is > 0 and < 100 && Regex.IsMatch(f.Groups[2].Value, @"^\d+s$|^\d+m\d\ds$"));
        Assert.Equal("100", frames[^1].Groups[1].Value);
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^step 300/300 \| 307k/307k tokens \| \S+ tok/s \| loss \d\.\d{4}"));   // (wrapped at 80 columns)
        // Phases and validations are printed above the bar; no plain progress lines.
        Assert.Contains(lines, l => l.StartsWith("  validating at step 0: valid-austen-bytes, valid-wikitext-bytes", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => Regex.IsMatch(l, @"^progress-check: step \d+/300 \("));
        Assert.Contains("succeeded at step 300", train.Output);
    }

    [Fact]
    public void InALogTrainPrintsPlainLinesWithPercentageAndEta()
    {
        var r = HcProcess.Run("train", "--spec", WriteSpec(), "--data-root", RepoPaths.DataRoot, "--out", RepoPaths.TempDir("progress-log"));
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.DoesNotContain("\x1b[", r.Stdout);   // no terminal sequences in a log
        var progress = r.Stdout.Split('\n').Select(l => Regex.Match(l, @"^progress-check: step (\d+)/40 \((\d+\.\d)%\) \| \S+/41k tokens \| (\S+) tok/s \| ETA (\S+) \| loss \d\.\d{4} \| lr ")).Where(m => m.Success).ToList();
        Assert.Equal(["1", "10", "20", "30", "40"], progress.Select(m => m.Groups[1].Value));   // the first step, then every 10
        Assert.Equal(["2.5", "25.0", "50.0", "75.0", "100.0"], progress.Select(m => m.Groups[2].Value));
        Assert.Equal("-", progress[0].Groups[4].Value);   // no ETA before there is a rate to base it on
        Assert.Matches(@"^\d+s$|^\d+m\d\ds$", progress[1].Groups[4].Value);   // measured from 10 steps, however fast they were
        Assert.Contains("  validating at step 0: valid-austen-bytes, valid-wikitext-bytes (up to 4,000 tokens each)", r.Stdout);
        Assert.Matches(@"(?m)^  validation valid-austen-bytes: loss \d\.\d{4}, ppl \d+\.\d\d \(\d[\d,]* tokens\) at step 40", r.Stdout);
    }
}

/// <summary>`hc data prepare` picks the tokenizer of the model the data is for, and asks when it cannot know.</summary>
public class DataPrepareTests
{
    [Fact]
    public void ThePresetPicksTheTokenizerAndWithoutEitherTheCommandSaysWhichToPick()
    {
        var text = Path.Combine(RepoPaths.TempDir("prepare-text"), "a.txt");
        File.WriteAllText(text, "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.");
        var unnamed = HcProcess.Run("data", "prepare", text, "--out", Path.Combine(RepoPaths.TempDir("prepare-none"), "d"));
        Assert.Equal(2, unnamed.ExitCode);
        Assert.Contains("error: --tokenizer = '(not given)': must be a tokenizer that matches the model that will train on it: bytes for tiny, small; gpt2 for olmo-1b", unnamed.Stderr);

        foreach (var (preset, tokenizer, vocab) in new[] { ("small", "bytes", 256), ("olmo-1b", "gpt2", 50257) })
        {
            var dir = Path.Combine(RepoPaths.TempDir("prepare-" + preset), "d");
            var r = HcProcess.Run("data", "prepare", text, "--out", dir, "--preset", preset);
            Assert.True(r.ExitCode == 0, r.Output);
            var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "manifest.json"))).RootElement;
            Assert.Equal(tokenizer, manifest.GetProperty("tokenizer").GetString());
            Assert.Equal(vocab, manifest.GetProperty("vocabSize").GetInt32());
        }
    }
}
