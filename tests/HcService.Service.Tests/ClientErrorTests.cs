using System.Text.RegularExpressions;

namespace HcService.Service.Tests;

/// <summary>
/// What a person sees when something is wrong or they stop a command: one line and a documented exit code (README, "Exit
/// codes"), never a stack trace. Against the fixture's service, a dead port, and `hc up` stopped in each of its phases.
/// </summary>
[Collection("service")]
public class ClientErrorTests(ServiceFixture svc)
{
    static void AssertClean(HcProcess.Result r)
    {
        Assert.DoesNotContain("Unhandled exception", r.Output);
        Assert.DoesNotMatch(@"\n\s+at \S+\(", r.Output);   // no stack frame
    }

    [Fact]
    public async Task UnreachableUnauthorisedForbiddenAndMissingAreOneLineAndTheirExitCodes()
    {
        var dead = $"http://127.0.0.1:{HcService.Store.EmbeddedPostgres.FreePort()}";
        var unreachable = await HcProcess.RunAsync("runs", "--server", dead);
        Assert.Equal(3, unreachable.ExitCode);
        Assert.Matches(@"^error: cannot reach the service: Connection refused", unreachable.Stderr);
        Assert.Single(unreachable.Stderr.Trim().Split('\n'));
        AssertClean(unreachable);

        var missing = await HcProcess.RunAsync("show", "987654", "--server", svc.Url);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("error: 404 Not Found", missing.Stderr);
        Assert.Contains("there is no run 987654", missing.Stderr);
        AssertClean(missing);

        var unknownKey = await HcProcess.RunAsync("cancel", "1", "--server", svc.Url, "--api-key", "hck_not-a-key-of-this-service");
        Assert.Equal(4, unknownKey.ExitCode);
        Assert.Contains("error: 401 Unauthorized", unknownKey.Stderr);
        AssertClean(unknownKey);

        var readOnly = await HcProcess.RunAsync("cancel", "1", "--server", svc.Url, "--api-key", await svc.CreateKey("read"));
        Assert.Equal(4, readOnly.ExitCode);
        Assert.Contains("error: 403 Forbidden", readOnly.Stderr);
        AssertClean(readOnly);
    }

    [Fact]
    public async Task CtrlCInWatchEndsWith130AndNoStackTrace()
    {
        svc.EnsureWorker();
        var id = await svc.SubmitOk("""
            { "name": "watched", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": "5M", "evalTokens": "2K", "checkpointInterval": "5M" } }
            """);
        await using var watch = HcLiveProcess.Start("watch", id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--server", svc.Url);
        await watch.WaitForLine($@"^run {id} watched: step \d+/\d+ \(", TimeSpan.FromMinutes(2));
        watch.Signal(2);
        Assert.Equal(130, await watch.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.DoesNotContain("Unhandled exception", watch.Output);
        Assert.DoesNotContain("Exception", watch.Output);
        await svc.Http.PostAsync($"api/runs/{id}/cancel", null);
        await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(1));
    }

    /// <summary>SIGTERM while PostgreSQL starts, while the API and the worker start, and while serving: exit 0, no stack
    /// trace, nothing left running, and the home starts again afterwards.</summary>
    [Theory]
    [InlineData("^starting PostgreSQL")]
    [InlineData("^API:")]
    [InlineData("^serving")]
    public async Task UpStopsCleanlyOnSigtermInEveryPhase(string phase)
    {
        var home = RepoPaths.TempDir("up-phase");
        await using (var up = HcLiveProcess.Start("up", "--home", home, "--port", "0", "--data-root", RepoPaths.DataRoot))
        {
            await up.WaitForLine(phase, UpProcess.Start);
            up.Signal(15);
            Assert.Equal(0, await up.WaitForExit(TimeSpan.FromMinutes(2)));
            Assert.DoesNotContain("Unhandled exception", up.Output);
            Assert.DoesNotMatch(@"\n\s+at \S+\(", up.Output);
            Assert.Contains("stopped", up.Output);
        }
        UpRestartTests.AssertNothingLeftRunning(home);
        await using var again = await UpProcess.StartAsync(home);
        again.Process.Signal(15);
        Assert.Equal(0, await again.Process.WaitForExit(TimeSpan.FromMinutes(2)));
    }
}
