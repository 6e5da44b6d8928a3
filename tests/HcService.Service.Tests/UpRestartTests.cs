using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>
/// The second day of `hc up` on one home, as a user lives it: stop it with SIGTERM while a run trains, start it again,
/// kill its worker, kill it with SIGKILL, start it again. Nothing is lost: finished runs keep every metric point,
/// checkpoint and key; interrupted runs resume from the step they reached and succeed. In the service collection so that
/// it never runs beside the timing-sensitive service tests.
/// </summary>
[Collection("service")]
public class UpRestartTests
{
        /// <summary>Everything stored about a run: (metric points, checkpoint steps, evaluation results).</summary>
    static async Task<(long Points, string Checkpoints, long Evaluations)> Stored(string database, long id)
    {
        await using var db = NpgsqlDataSource.Create(database);
        async Task<object?> Scalar(string sql)
        {
            await using var cmd = db.CreateCommand(sql);
            cmd.Parameters.AddWithValue("id", id);
            return await cmd.ExecuteScalarAsync();
        }
        return ((long)(await Scalar("""SELECT count(*) FROM hc.metric_points WHERE "RunId" = @id"""))!,
            (string)(await Scalar("""SELECT coalesce(string_agg("Step"::text || ':' || "Sha256", ',' ORDER BY "Step"), '') FROM hc.checkpoints WHERE "RunId" = @id"""))!,
            (long)(await Scalar("""SELECT count(*) FROM hc.evaluation_results WHERE "RunId" = @id"""))!);
    }

    /// <summary>The stopped attempt's step (from its reason) and the step the next attempt resumed from (its log).</summary>
    static async Task AssertResumedFromTheStepReached(UpProcess up, string home, long id, string reasonStart, long atLeast)
    {
        var attempts = (await up.Run(id))["attempts"]!.AsArray();
        Assert.True(attempts.Count >= 2, attempts.ToJsonString());
        Assert.Equal("stopped", attempts[0]!["outcome"]!.GetValue<string>());
        var reason = attempts[0]!["reason"]!.GetValue<string>();
        var stopped = System.Text.RegularExpressions.Regex.Match(reason, $@"^{System.Text.RegularExpressions.Regex.Escape(reasonStart)} at step (\d+): checkpointed and handed back$");
        Assert.True(stopped.Success, reason);
        var step = long.Parse(stopped.Groups[1].Value);
        Assert.True(step >= atLeast, $"stopped at step {step}, but the run had shown step {atLeast} before the signal");
        var log = await File.ReadAllTextAsync(Path.Combine(home, "worker.log"));
        Assert.Contains($"[run {id}] resumed from ckpt-{step:D9}.hcckpt: step {step},", log);
        Assert.Equal(Enumerable.Range(1, 200).Select(s => (long)s), await up.LossSteps(id));   // every step once
    }

    internal static void AssertNothingLeftRunning(string home)
    {
        Assert.False(File.Exists(Path.Combine(home, "postgres", "pgdata", "postmaster.pid")), "PostgreSQL is still running");
        var left = Process.GetProcesses().Where(p =>
        {
            try { return File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(home, StringComparison.Ordinal); }
            catch (IOException) { return false; }
            catch (UnauthorizedAccessException) { return false; }
        }).Select(p => p.Id).ToList();
        Assert.True(left.Count == 0, $"processes of this home still running: {string.Join(", ", left)}");
    }

    [Fact]
    public async Task UpRestartsOnItsHomeLosingNothingAndResumesRunsStoppedBySigtermWorkerDeathOrSigkill()
    {
        var home = RepoPaths.TempDir("up-restart");

        // Day 1: a finished run; a run whose worker is killed (the supervisor restarts it); a run stopped by SIGTERM to hc up.
        await using var up1 = await UpProcess.StartAsync(home);
        var finished = await up1.Submit(UpProcess.Quick, "finished");
        Assert.Equal("succeeded", await up1.WaitForEnd(finished));
        var before = await Stored(up1.Database, finished);
        Assert.True(before.Points > 100 && before.Checkpoints.Length > 0, before.ToString());
        var keys = (await up1.Http.GetFromJsonAsync<JsonArray>("api/keys"))!.ToJsonString();

        // A second hc up on a home in use refuses at once and leaves the first one (and its PostgreSQL) alone.
        var second = await HcProcess.RunAsync("up", "--home", home, "--port", "0");
        Assert.Equal(2, second.ExitCode);
        Assert.Contains($"another hc up is running on {home}", second.Output);
        Assert.Equal("succeeded", (await up1.Run(finished))["run"]!["status"]!.GetValue<string>());

        var workerKilled = await up1.Submit(UpProcess.Long, "worker-killed");
        var shown = await up1.WaitForStep(workerKilled, 30);
        var workerPid = int.Parse((await up1.Run(workerKilled))["lease"]!["owner"]!.GetValue<string>().Split(':')[1]);
        HcLiveProcess.Kill(workerPid, 9);
        await up1.Process.WaitForLine($@"worker process {workerPid} exited with code 137; restarting it in \d+ s", UpProcess.Start);
        await up1.Process.WaitForLine(@"worker restarted: process \d+", UpProcess.Start);
        Assert.Equal("succeeded", await up1.WaitForEnd(workerKilled));
        await AssertResumedFromTheStepReached(up1, home, workerKilled, "worker gone", shown);

        var sigtermed = await up1.Submit(UpProcess.Long, "up-sigtermed");
        var shownAtSigterm = await up1.WaitForStep(sigtermed, 30);
        up1.Process.Signal(15);
        Assert.Equal(0, await up1.Process.WaitForExit(TimeSpan.FromMinutes(2)));
        Assert.DoesNotContain("Unhandled exception", up1.Process.Output);
        Assert.Contains("stopped", up1.Process.Output);
        AssertNothingLeftRunning(home);

        // Day 2: the same home. Everything is there, the same key works, the stopped run resumes from its step.
        await using var up2 = await UpProcess.StartAsync(home);
        Assert.Equal(up1.Key, up2.Key);
        Assert.Equal(before, await Stored(up2.Database, finished));
        Assert.Equal(keys, (await up2.Http.GetFromJsonAsync<JsonArray>("api/keys"))!.ToJsonString());
        Assert.Equal("succeeded", await up2.WaitForEnd(sigtermed));
        await AssertResumedFromTheStepReached(up2, home, sigtermed, "stop requested (SIGTERM/SIGINT)", shownAtSigterm);

        // hc up killed with SIGKILL mid-run: its worker notices, checkpoints and hands the run back; PostgreSQL stays up.
        var sigkilled = await up2.Submit(UpProcess.Long, "up-sigkilled");
        var shownAtSigkill = await up2.WaitForStep(sigkilled, 30);
        up2.Process.Signal(9);
        await up2.Process.WaitForExit(TimeSpan.FromSeconds(30));
        var orphans = Stopwatch.StartNew();
        while (Process.GetProcesses().Any(p => IsWorkerOf(p, home)))
        {
            Assert.True(orphans.Elapsed < TimeSpan.FromMinutes(1), "the worker of a killed hc up did not stop");
            await Task.Delay(100);
        }

        // Day 3: hc up takes the running PostgreSQL over and the run resumes to success; a new run succeeds.
        await using var up3 = await UpProcess.StartAsync(home);
        Assert.Contains("PostgreSQL was still running", up3.Process.Output);
        Assert.Equal("succeeded", await up3.WaitForEnd(sigkilled));
        // (The worker stopped its training process the way a stopping worker does: by SIGTERM.)
        await AssertResumedFromTheStepReached(up3, home, sigkilled, "stop requested (SIGTERM/SIGINT)", shownAtSigkill);
        var fresh = await up3.Submit(UpProcess.Quick, "day-3");
        Assert.Equal("succeeded", await up3.WaitForEnd(fresh));
        Assert.Equal(before, await Stored(up3.Database, finished));
        up3.Process.Signal(2);   // Ctrl+C
        Assert.Equal(0, await up3.Process.WaitForExit(TimeSpan.FromMinutes(2)));
        Assert.DoesNotContain("Unhandled exception", up3.Process.Output);
        AssertNothingLeftRunning(home);
    }

    static bool IsWorkerOf(Process p, string home)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{p.Id}/cmdline");
            return cmdline.Contains("worker", StringComparison.Ordinal) && cmdline.Contains(home, StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}
