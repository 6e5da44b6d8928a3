namespace HcService.Service.Tests;

/// <summary>The README's main command, as a newcomer runs it: `hc up --demo` (its own PostgreSQL, API and worker).
/// In the service collection so that it never runs beside the timing-sensitive service tests.</summary>
[Collection("service")]
public class UpCommandTests
{
    [Fact]
    public async Task UpDemoRunsResidualAndDhcAtThreeSeedsAndPrintsTheSeedPairedComparisonAndStopsEverything()
    {
        var home = RepoPaths.TempDir("up");
        var r = await HcProcess.RunAsync(TimeSpan.FromMinutes(10), "up", "--demo", "--port", "0", "--home", home, "--data-root", RepoPaths.DataRoot);

        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Matches(@"^Web UI:\s+http://127\.0\.0\.1:\d+/\n", r.Stdout[r.Stdout.IndexOf("Web UI:", StringComparison.Ordinal)..]);   // the UI's URL first
        Assert.True(r.Stdout.IndexOf("Web UI:", StringComparison.Ordinal) < r.Stdout.IndexOf("API:", StringComparison.Ordinal));
        Assert.Matches(@"API:\s+http://127\.0\.0\.1:\d+", r.Stdout);
        Assert.Contains("/swagger", r.Stdout);
        Assert.Contains("/hangfire", r.Stdout);
        Assert.Matches(@"API key: hck_[A-Za-z0-9_-]{43}\n", r.Stdout);   // the first admin key, printed once
        Assert.Contains($"Data root: {RepoPaths.DataRoot}", r.Stdout);
        // One group: tiny residual and DHC x4 at three seeds each, every run to success.
        foreach (var variant in new[] { "residual", "dhc4" })
            foreach (var seed in new[] { 1, 2, 3 })
                Assert.Matches($@"tiny-{variant}-s{seed}\s+run \d+: succeeded, train loss \d\.\d{{4}}, validation loss \d\.\d{{4}}", r.Stdout);
        // The seed-paired comparison: mean +/- std of each variant, the paired delta with its 95% interval, the verdict,
        // and what the scale can show.
        Assert.Matches(@"baseline variant: tiny-residual \(residual; runs \d+ \d+ \d+; seeds 1 2 3\)", r.Stdout);
        Assert.Matches(@"candidate variant: tiny-dhc4 \(dynamic-hc x4; runs \d+ \d+ \d+; seeds 1 2 3\)", r.Stdout);
        Assert.Matches(@"val/valid-austen-bytes/loss\s+\d\.\d{4} \+/- \d\.\d{4}\s+\d\.\d{4} \+/- \d\.\d{4}\s+[+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\]\s+(resolved|not resolved)", r.Stdout);
        Assert.Matches(@"average acc\s+\d+\.\d \+/- \d+\.\d%", r.Stdout);
        Assert.Matches(@"verdict: val/valid-austen-bytes/loss: (resolved|not resolved)", r.Stdout);
        Assert.Contains("What this can show:", r.Stdout);
        Assert.Contains("/api/comparisons/plot.svg?runs=", r.Stdout);
        Assert.Contains("stopping worker, API and PostgreSQL", r.Stdout);
        Assert.True(File.Exists(Path.Combine(home, "postgres", "pgdata", "PG_VERSION")));
        // Everything stopped: no server is left on the folder.
        Assert.False(File.Exists(Path.Combine(home, "postgres", "pgdata", "postmaster.pid")), "PostgreSQL is still running");
    }
}
