namespace HcService.Service.Tests;

/// <summary>The README's main command, as a newcomer runs it: `hc up --demo` (its own PostgreSQL, API and worker).
/// In the service collection so that it never runs beside the timing-sensitive service tests.</summary>
[Collection("service")]
public class UpCommandTests
{
    [Fact]
    public async Task UpDemoRunsResidualAndDhcToSuccessAndStopsEverything()
    {
        var home = RepoPaths.TempDir("up");
        var r = await HcProcess.RunAsync(TimeSpan.FromMinutes(10), "up", "--demo", "--port", "0", "--home", home, "--data-root", RepoPaths.DataRoot);

        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Matches(@"API:\s+http://127\.0\.0\.1:\d+", r.Stdout);
        Assert.Contains("/swagger", r.Stdout);
        Assert.Contains("/hangfire", r.Stdout);
        Assert.Matches(@"API key: hck_[A-Za-z0-9_-]{43}\n", r.Stdout);   // the first admin key, printed once
        Assert.Contains($"Data root: {RepoPaths.DataRoot}", r.Stdout);
        Assert.Matches(@"tiny residual\s+run \d+: succeeded, train loss \d\.\d{4}, validation loss \d\.\d{4}", r.Stdout);
        Assert.Matches(@"tiny DHC x4\s+run \d+: succeeded, train loss \d\.\d{4}, validation loss \d\.\d{4}", r.Stdout);
        // The comparison of the two runs: losses at equal tokens with the speedup verdict, and downstream accuracy.
        Assert.Matches(@"val/valid-austen-bytes/loss\s+\d\.\d{4}\s+\d\.\d{4}\s+[+-]\d\.\d{4}", r.Stdout);
        Assert.Matches(@"average acc\s+\d+\.\d%", r.Stdout);
        Assert.Contains("/api/comparisons/plot.svg?runs=", r.Stdout);
        Assert.Contains("stopping worker, API and PostgreSQL", r.Stdout);
        Assert.True(File.Exists(Path.Combine(home, "postgres", "pgdata", "PG_VERSION")));
        // Everything stopped: no server is left on the folder.
        Assert.False(File.Exists(Path.Combine(home, "postgres", "pgdata", "postmaster.pid")), "PostgreSQL is still running");
    }
}
