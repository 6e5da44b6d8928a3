namespace HcService.Cli.Tests;

public class ReportCommandTests
{
    [Fact]
    public void TablesValidationCurvesByTokensWithFinalDeltasToTheFirstRun()
    {
        string Run(string name, params (long Tokens, double Loss)[] points)
        {
            var dir = Path.Combine(RepoPaths.TempDir("report"), name);
            Directory.CreateDirectory(dir);
            File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), points.Select(p =>
                $$"""{"kind":"validation","step":{{p.Tokens / 1024}},"tokens":{{p.Tokens}},"dataset":"valid-a","loss":{{p.Loss}},"perplexity":1,"evalTokens":8192}""")
                .Append("""{"kind":"step","step":1,"tokens":1024,"loss":9}"""));
            return dir;
        }
        var baseline = Run("base", (0, 5.5), (1024, 3.0), (2048, 2.5));
        var candidate = Run("hc", (0, 5.5), (1024, 2.9), (2048, 2.375));

        var r = HcProcess.Run("report", baseline, candidate);

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("#### Validation loss on valid-a", r.Stdout);
        Assert.Contains("| tokens | base | hc |", r.Stdout);
        Assert.Contains("| 1,024 | 3.0000 | 2.9000 |", r.Stdout);
        Assert.Contains("| final - base | 0.0000 | -0.1250 |", r.Stdout);
    }
}
