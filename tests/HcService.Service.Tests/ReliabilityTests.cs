using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>
/// No run lost (docs/design.md section 5), with real processes and real signals: a SIGKILLed worker's run is requeued and
/// resumed elsewhere and ends with the weights of an uninterrupted run; a zombie attempt writes nothing; a PostgreSQL
/// restart during a run loses no metric point.
/// </summary>
[Collection("service")]
public class ReliabilityTests(ServiceFixture svc)
{
    /// <summary>200 steps of 1,024 tokens with a checkpoint every 25 steps and dropout, so that the data position and
    /// the RNG state both matter for an exact resume.</summary>
    const string Resumable = """
        { "name": "NAME", "model": { "preset": "tiny", "overrides": { "dropout": 0.1 } }, "architecture": "dense",
          "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 204800, "evalTokens": "2K", "evalInterval": 102400, "checkpointInterval": 25600, "seed": 7 } }
        """;
    const long Steps = 200;

    static readonly SemaphoreSlim ReferenceLock = new(1, 1);
    static (long Id, byte[] Weights, List<(long Step, double Value)> Loss)? reference;

    /// <summary>The same spec run once without interruption (shared by the kill cases).</summary>
    async Task<(long Id, byte[] Weights, List<(long Step, double Value)> Loss)> Reference()
    {
        await ReferenceLock.WaitAsync();
        try
        {
            if (reference is { } r) return r;
            var id = await svc.SubmitOk(Resumable.Replace("NAME", "uninterrupted"));
            Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(5))).Status);
            reference = (id, FinalState(id), await svc.Series(id, "train/loss"));
            return reference.Value;
        }
        finally { ReferenceLock.Release(); }
    }

    /// <summary>Model and optimizer state of the run's final checkpoint: the file after its JSON header (which holds a
    /// timestamp and the spec's name).</summary>
    byte[] FinalState(long runId)
    {
        var path = Path.Combine(svc.CheckpointRoot, $"run-{runId}", "checkpoints", $"ckpt-{Steps:D9}.hcckpt");
        var bytes = File.ReadAllBytes(path);
        var header = 8 + 4 + BitConverter.ToInt32(bytes, 8);
        return bytes[header..];
    }

    public static TheoryData<string, int> KillMoments() => new()
    {
        { "worker", 0 },    // the worker only, as the run starts: its orphaned child hands the run back, which restarts from step 0
        { "worker", 3 },    // the worker only, after three checkpoints
        { "machine", 1 },   // worker and child together (a machine gone): the lease expires; resume from checkpoint 1
        { "machine", 5 },   // ... late in the run
    };

    [Theory]
    [MemberData(nameof(KillMoments))]
    public async Task AKilledWorkersRunIsRequeuedResumedByAnotherWorkerAndEndsWithTheUninterruptedWeights(string what, int afterCheckpoints)
    {
        var expected = await Reference();
        svc.EnsureWorker();
        var id = await svc.SubmitOk(Resumable.Replace("NAME", $"kill-{what}-{afterCheckpoints}"));
        await svc.WaitFor(id, ["running"], TimeSpan.FromMinutes(2));
        // The moment: the checkpoint at step 25 x k recorded (retention keeps only the newest, so by step); for k = 0,
        // at once, while the training process is still starting.
        var moment = System.Diagnostics.Stopwatch.StartNew();
        while (afterCheckpoints > 0 && !(await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/checkpoints"))!.Any(c => c!["step"]!.GetValue<long>() >= 25 * afterCheckpoints))
        {
            Assert.True(moment.Elapsed < TimeSpan.FromMinutes(2), $"run {id} never checkpointed step {25 * afterCheckpoints}");
            await Task.Delay(50);
        }
        Assert.Equal("running", (await svc.Run(id))["run"]!["status"]!.GetValue<string>());

        // The worker holding the lease: its pid is in the lease owner (host:pid:queue).
        var owner = (await svc.Run(id))["lease"]!["owner"]!.GetValue<string>();
        var workerPid = int.Parse(owner.Split(':')[1]);
        var childPid = (int)await RunClient.ChildPid(id);
        Kill(workerPid);
        if (what == "machine") Kill(childPid);
        svc.StartWorker();

        Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(5))).Status);
        var run = await svc.Run(id);
        var attempts = run["attempts"]!.AsArray();
        Assert.True(attempts.Count >= 2, run.ToJsonString());
        // A killed worker's training process notices, checkpoints and hands the run back (stopped); a lost machine's
        // attempt is found by its expired lease (lost). A worker killed while its training process is still starting
        // (k = 0) can go either way: the process hands back at its first step, and if starting took longer than the lease
        // (a loaded machine: seen once under CPU load in CI), the reaper has requeued the run first (lost) and the process
        // finds itself superseded. No step is lost either way; what follows checks that.
        var outcome = attempts[0]!["outcome"]!.GetValue<string>();
        if (what == "worker" && afterCheckpoints == 0) Assert.Contains(outcome, new[] { "stopped", "lost" });
        else Assert.Equal(what == "worker" ? "stopped" : "lost", outcome);
        Assert.NotEqual(attempts[0]!["worker"]!.GetValue<string>(), attempts[^1]!["worker"]!.GetValue<string>());
        Assert.Equal("succeeded", attempts[^1]!["outcome"]!.GetValue<string>());
        if (afterCheckpoints > 0)
        {
            // Resumed from a checkpoint at or after the moment of the kill, not from scratch.
            var resumed = System.Text.RegularExpressions.Regex.Match(svc.WorkerLog, $@"\[run {id}\] resumed from ckpt-\d+\.hcckpt: step (\d+)");
            Assert.True(resumed.Success && long.Parse(resumed.Groups[1].Value) >= 25 * afterCheckpoints, svc.WorkerLog);
        }

        // Steps 1..200, each once, with the uninterrupted run's losses; and bitwise its final weights and optimizer state.
        var loss = await svc.Series(id, "train/loss");
        Assert.Equal(Enumerable.Range(1, (int)Steps).Select(s => (long)s), loss.Select(p => p.Step));
        Assert.Equal(expected.Loss, loss);
        Assert.Equal(expected.Weights, FinalState(id));
        Assert.False(Process.GetProcesses().Any(p => p.Id == childPid), "the killed worker's training process is still running");
    }

    /// <summary>A worker killed before its training process had even started to watch it (the kill-worker case above at
    /// k = 0, on a loaded machine): the process was orphaned before it could ask who its parent was, so it must know its
    /// worker from what the worker told it, not from its parent at start, and hand the run back at its first step. The
    /// worker here is a process that has already exited.</summary>
    [Fact]
    public async Task ATrainingProcessOrphanedBeforeItStartedHandsTheRunBack()
    {
        var spec = HcService.Contract.Jobs.JobSpec.Parse(Resumable.Replace("NAME", "orphaned-at-start"));
        var (id, db, _) = await svc.ClaimedRun("orphaned-at-start", "orphan-test", Steps, spec);
        await using var _db = db;
        using var gone = Process.Start("true")!;
        await gone.WaitForExitAsync();
        var r = await HcProcess.RunAsync(TimeSpan.FromMinutes(3), new Dictionary<string, string?>
        {
            ["ConnectionStrings__hc"] = svc.Postgres.ConnectionString,
            [HcSettings.DataRootSetting.Name] = svc.DataRoot,
            [HcSettings.CheckpointRootSetting.Name] = svc.CheckpointRoot,
            ["HC_WORKER_PID"] = gone.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, "run-job", "--run-id", id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--attempt", "1");

        Assert.True(r.ExitCode == 75, r.Output);   // handed back (EX_TEMPFAIL), not trained to the end
        Assert.Matches(@"worker gone at step \d+: checkpointed and handed back", r.Stdout);
        var run = await svc.Run(id);
        Assert.Equal("queued", run["run"]!["status"]!.GetValue<string>());
        Assert.True(run["run"]!["step"]!.GetValue<long>() < Steps, run.ToJsonString());
        Assert.Equal("stopped", run["attempts"]![0]!["outcome"]!.GetValue<string>());
    }

    static void Kill(int pid) => Process.Start("kill", ["-9", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();

    [Fact]
    public async Task AZombieAttemptCannotWriteMetricsCheckpointsOrStatusAfterANewerAttemptTookOver()
    {
        svc.EnsureWorker();
        var id = await svc.SubmitOk(Resumable.Replace("NAME", "zombie").Replace("204800", "5000000"));
        await svc.WaitFor(id, ["running"], TimeSpan.FromMinutes(2));
        await svc.WaitForStep(id, 3);
        var child = Process.GetProcessById((int)await RunClient.ChildPid(id));

        // Another worker takes the run over (what a reap and a new claim do), while the old attempt still trains.
        await using var db = NpgsqlDataSource.Create(svc.Postgres.ConnectionString);
        long points, checkpoints;
        int attempt;
        await using (var tx = await (await db.OpenConnectionAsync()).BeginTransactionAsync())
        {
            attempt = (int)(await Scalar(tx, """
                UPDATE hc.runs SET "Attempt" = "Attempt" + 1, "LeaseOwner" = 'elsewhere:1:cpu', "LeaseExpiresAt" = now() + interval '1 hour'
                WHERE "Id" = @id RETURNING "Attempt"
                """, id))!;
            points = (long)(await Scalar(tx, """SELECT count(*) FROM hc.metric_points WHERE "RunId" = @id""", id))!;
            checkpoints = (long)(await Scalar(tx, """SELECT count(*) FROM hc.checkpoints WHERE "RunId" = @id""", id))!;
            await tx.CommitAsync();
        }

        // The zombie notices within seconds and stops without a checkpoint; its worker's heartbeat finds the lease gone.
        Assert.True(child.WaitForExit(TimeSpan.FromSeconds(30)), "the zombie attempt is still training");
        await Task.Delay(TimeSpan.FromSeconds(3));   // anything still in flight from the old attempt has landed by now
        var run = await svc.Run(id);
        Assert.Equal("running", run["run"]!["status"]!.GetValue<string>());
        Assert.Equal(attempt, run["run"]!["attempt"]!.GetValue<int>());
        Assert.Null(run["run"]!["finishedAt"]);
        await using (var conn = await db.OpenConnectionAsync())
        {
            Assert.Equal(points, (long)(await Scalar(conn, """SELECT count(*) FROM hc.metric_points WHERE "RunId" = @id""", id))!);
            Assert.Equal(checkpoints, (long)(await Scalar(conn, """SELECT count(*) FROM hc.checkpoints WHERE "RunId" = @id""", id))!);
            await Scalar(conn, """UPDATE hc.runs SET "Status" = 'cancelled', "FinishedAt" = now(), "LeaseOwner" = NULL, "LeaseExpiresAt" = NULL WHERE "Id" = @id""", id);
        }
    }

    [Fact]
    public async Task TheLeaseProtocolFencesEveryWriteOfAStaleAttempt()
    {
        await using var db = NpgsqlDataSource.Create(svc.Postgres.ConnectionString);
        var leases = new RunLifecycle(db, new LeaseOptions { Duration = TimeSpan.FromSeconds(1), MaxAttempts = 2 });
        long id;
        await using (var conn = await db.OpenConnectionAsync())
            id = (long)(await Scalar(conn, """
                INSERT INTO hc.runs ("Name", "Spec", "Preset", "Architecture", "Connection", "Rate", "Tags", "Status", "Queue", "Attempt", "MaxAttempts",
                    "TotalSteps", "TokenBudget", "Step", "Tokens", "CancelRequested", "CreatedAt", "UpdatedAt")
                VALUES ('fencing', '{}', 'tiny', 'dense', 'residual', 1, '{}', 'queued', 'test', 0, 2, 10, 10, 0, 0, false, now(), now())
                RETURNING "Id"
                """, 0))!;

        Assert.Equal(1, (await leases.StartAttemptAsync(id, "a:1:test", default))!.Attempt);
        Assert.Null(await leases.StartAttemptAsync(id, "b:2:test", default));   // a duplicate dispatch takes nothing
        Assert.True(await leases.RenewAsync(id, 1, "a:1:test", default));
        Assert.False(await leases.RenewAsync(id, 1, "b:2:test", default));

        await Task.Delay(1200);                                           // worker a stops beating: its lease expires
        await leases.ReapAsync(default);                                  // (or the API's reaper got there first)
        Assert.Equal("queued", await Status(db, id));
        Assert.Equal(2, (await leases.StartAttemptAsync(id, "b:2:test", default))!.Attempt);

        // Attempt 1 is a zombie now: none of its writes land.
        Assert.False(await leases.RenewAsync(id, 1, "a:1:test", default));
        Assert.False(await leases.FinishAsync(id, 1, RunStatus.Succeeded, null, default));
        var sink = new HcService.Cli.Children.PostgresRunSink(db, id, 1, svc.CheckpointRoot, _ => { });
        sink.OnValidation(new HcService.Core.Training.ValidationMetrics(5, 5, "zombie", 1.0, 2.7, 10));
        sink.Flush(TimeSpan.FromSeconds(5));
        await using (var conn = await db.OpenConnectionAsync())
            Assert.Equal(0L, (long)(await Scalar(conn, """SELECT count(*) FROM hc.metric_points WHERE "RunId" = @id""", id))!);

        // Attempt 2 writes; then it is lost too, and with two attempts used the run fails with its history.
        var live = new HcService.Cli.Children.PostgresRunSink(db, id, 2, svc.CheckpointRoot, _ => { });
        live.OnValidation(new HcService.Core.Training.ValidationMetrics(5, 5, "live", 1.0, 2.7, 10));
        live.Flush(TimeSpan.FromSeconds(5));
        await Task.Delay(1200);
        await leases.ReapAsync(default);
        Assert.Equal("failed", await Status(db, id));
        await using (var conn = await db.OpenConnectionAsync())
        {
            Assert.Equal(2L, (long)(await Scalar(conn, """SELECT count(*) FROM hc.metric_points WHERE "RunId" = @id""", id))!);
            var reason = (string)(await Scalar(conn, """SELECT "FailureReason" FROM hc.runs WHERE "Id" = @id""", id))!;
            Assert.Contains("lost its worker on attempt 2 of 2", reason);
            Assert.Contains("attempt 1 on a:1:test: lost; attempt 2 on b:2:test: lost", reason);
            Assert.Equal(2L, (long)(await Scalar(conn, """SELECT count(*) FROM hc.run_attempts WHERE "RunId" = @id AND "Outcome" = 'lost'""", id))!);
        }
    }

    [Fact]
    public async Task APostgresRestartDuringARunLosesNoMetricPoint()
    {
        svc.EnsureWorker();
        var id = await svc.SubmitOk(Resumable.Replace("NAME", "pg-restart"));
        await svc.WaitFor(id, ["running"], TimeSpan.FromMinutes(2));
        await svc.WaitForStep(id, 5);
        // A client following the run through the restart: its stream pauses, stays open, and misses nothing.
        var stream = SseReader.Read(svc.Http, $"api/runs/{id}/events?names=train/loss", timeout: TimeSpan.FromMinutes(6));
        await svc.Postgres.RestartAsync(TimeSpan.FromSeconds(1));

        Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(5))).Status);
        var run = await svc.Run(id);
        Assert.Single(run["attempts"]!.AsArray());   // the worker kept its lease: no requeue was needed
        foreach (var name in new[] { "train/loss", "train/lr", "train/grad_norm" })
            Assert.Equal(Enumerable.Range(1, (int)Steps).Select(s => (long)s), (await svc.Series(id, name)).Select(p => p.Step));
        Assert.Equal([0L, 100L, 200L], (await svc.Series(id, "val/valid-austen-bytes/loss")).Select(p => p.Step));
        var checkpoints = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/checkpoints"))!;
        Assert.Contains(checkpoints, c => c!["step"]!.GetValue<long>() == Steps);
        var events = await stream;
        Assert.Equal(["queued", "running", "succeeded"], events.Where(e => e.Kind == "status").Select(e => e.Status));
        Assert.Equal(Enumerable.Range(1, (int)Steps).Select(s => (long)s), events.Where(e => e.Kind == "metric").Select(e => e.Point.Step));
    }

    static async Task<string> Status(NpgsqlDataSource db, long id)
    {
        await using var conn = await db.OpenConnectionAsync();
        return (string)(await Scalar(conn, """SELECT "Status" FROM hc.runs WHERE "Id" = @id""", id))!;
    }

    static async Task<object?> Scalar(NpgsqlTransaction tx, string sql, long id)
    {
        await using var cmd = new NpgsqlCommand(sql, tx.Connection, tx);
        cmd.Parameters.AddWithValue("id", id);
        return await cmd.ExecuteScalarAsync();
    }

    static async Task<object?> Scalar(NpgsqlConnection conn, string sql, long id)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        cmd.Parameters.AddWithValue("id", id);
        return await cmd.ExecuteScalarAsync();
    }
}
