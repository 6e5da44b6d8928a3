using HcService.Store;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HcService.Cli.Children;
using HcService.Core.Training;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>
/// Database outages lose no measurement. PostgreSQL is stopped for 5 s (shorter than the lease: usually waited out),
/// 45 s and 3 min (longer: the attempt stops by itself and a new one takes over) at different moments of a run;
/// every stored series must then equal an uninterrupted run's, step by step and bit for bit, and every checkpoint on
/// disk (some written while the database was away) must be listed. The sink-level tests pin the write-ahead journal:
/// points reach the disk before the checkpoint that covers them, and the attempt that takes over writes what another
/// left, filling gaps only.
/// </summary>
[Collection("service")]
public class OutageTests(ServiceFixture svc)
{
    const string Spec = """
        { "name": "NAME", "model": { "preset": "tiny", "overrides": { "dropout": 0.1 } }, "architecture": "dense",
          "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 409600, "evalTokens": "2K", "evalInterval": 102400, "checkpointInterval": 10240, "seed": 11 } }
        """;
    /// <summary>Long enough that a run is still training when an outage outlasts its self-fence (8 s with the tests'
    /// 12 s lease) even on a quiet machine (about 0.05 s a step): otherwise it finishes, waits for the database and ends
    /// on its first attempt, and the takeover is never exercised.</summary>
    const long Steps = 400;
    /// <summary>Every series that does not depend on the clock (not tokens_per_second, step_seconds or mfu).</summary>
    static readonly string[] Compared = ["train/loss", "train/cross_entropy", "train/lr", "train/grad_norm", "val/valid-austen-bytes/loss", "val/valid-austen-bytes/perplexity"];

    static Dictionary<string, List<(long Step, double Value)>>? reference;
    static double referenceStepSeconds;

    async Task<Dictionary<string, List<(long Step, double Value)>>> Reference()
    {
        if (reference is not null) return reference;
        svc.EnsureWorker();
        var id = await svc.SubmitOk(Spec.Replace("NAME", "outage-reference"));
        Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(5))).Status);
        var series = new Dictionary<string, List<(long, double)>>();
        foreach (var name in Compared) series[name] = await svc.Series(id, name);
        var stepSeconds = (await svc.Series(id, "train/step_seconds")).Select(p => p.Item2).Order().ToList();
        referenceStepSeconds = stepSeconds[stepSeconds.Count / 2];
        Assert.Equal(Enumerable.Range(1, (int)Steps).Select(s => (long)s), series["train/loss"].Select(p => p.Item1));
        return reference = series;
    }

    [Theory]
    [InlineData(5, 60)]
    [InlineData(45, 15)]
    [InlineData(180, 35)]
    public async Task AnOutageLosesNoPointAndEveryCheckpointIsListed(int downSeconds, long atStep)
    {
        var expected = await Reference();
        svc.EnsureWorker();
        var id = await svc.SubmitOk(Spec.Replace("NAME", $"outage-{downSeconds}s"));
        await svc.WaitForStep(id, atStep);
        var before = (await svc.Run(id))["run"]!;
        Assert.Equal("running", before["status"]!.GetValue<string>());
        // Training left when the database goes (the reported step lags by up to 2 s of flushes: counted as trained).
        var remaining = (Steps - before["step"]!.GetValue<long>()) * referenceStepSeconds - 2;
        await svc.Postgres.RestartAsync(TimeSpan.FromSeconds(downSeconds));

        var (status, _) = await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(8));
        var run = await svc.Run(id);
        Assert.True(status == "succeeded", $"{status}: {run}\n{svc.WorkerLog}");
        var attempts = run["attempts"]!.AsArray().Count;
        // A long outage is taken over by a new attempt (recovery exercised). A short one is usually waited out, but with
        // the tests' 12 s lease a 5 s outage plus the restart's own seconds can reach the 8 s self-fence: either way, no
        // point may be lost, which is what is asserted below.
        // (Asserted when the run had clearly more training left than the 8 s self-fence: on a much faster machine it may
        // finish first, wait the outage out and end on its first attempt, which loses nothing either.)
        if (downSeconds > ServiceFixture.LeaseSeconds && remaining > 16) Assert.True(attempts >= 2, $"a {downSeconds} s outage at step {atStep} was not taken over by a new attempt: {run}");   // recovery was exercised
        foreach (var name in Compared)
        {
            var actual = await svc.Series(id, name);
            Assert.True(expected[name].Select(p => p.Step).SequenceEqual(actual.Select(p => p.Step)),
                $"{name} after a {downSeconds} s outage at step {atStep} ({attempts} attempt(s)): steps differ; missing " +
                string.Join(",", expected[name].Select(p => p.Step).Except(actual.Select(p => p.Step)).Take(30)));
            Assert.Equal(expected[name].Select(p => BitConverter.DoubleToInt64Bits(p.Value)), actual.Select(p => BitConverter.DoubleToInt64Bits(p.Value)));
        }
        // Every checkpoint on disk is listed, with its file's size; every listed one is on disk.
        var listed = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/checkpoints"))!
            .Select(c => (Step: c!["step"]!.GetValue<long>(), Bytes: c["bytes"]!.GetValue<long>())).OrderBy(c => c.Step).ToList();
        var folder = TrainingRun.CheckpointFolder(new HcPaths { DataRoot = svc.DataRoot, CheckpointRoot = svc.CheckpointRoot }.RunFolder(id));
        var onDisk = new CheckpointStore(folder).List().Select(c => (c.Step, Bytes: new FileInfo(c.Path).Length)).OrderBy(c => c.Step).ToList();
        Assert.Equal(onDisk, listed);
        Assert.Contains(listed, c => c.Step == Steps);
        // Nothing is left in the journals once the run is done.
        Assert.Empty(Directory.Exists(Path.Combine(Path.GetDirectoryName(folder)!, "journal"))
            ? Directory.GetFiles(Path.Combine(Path.GetDirectoryName(folder)!, "journal")) : []);
    }

    /// <summary>The second attempt: the run requeued and claimed again, as the reaper and a worker would.</summary>
    static async Task TakeOver(NpgsqlDataSource db, RunLifecycle leases, long id)
    {
        await using (var cmd = db.CreateCommand("""UPDATE hc.runs SET "Status" = 'queued', "LeaseOwner" = NULL WHERE "Id" = $1"""))
        {
            cmd.Parameters.Add(new() { Value = id });
            await cmd.ExecuteNonQueryAsync();
        }
        Assert.Equal(2, (await leases.StartAttemptAsync(id, "test:2:journal-test", CancellationToken.None))!.Attempt);
    }

    static StepMetrics Step(long step, double loss) => new()
    {
        Step = step, Tokens = step * 1024, Loss = loss, CrossEntropy = loss, Lr = 1e-3, GradNorm = 1, StepSeconds = 0.01, TokensPerSecond = 1e5, Mfu = 0.1,
    };

    static async Task<Dictionary<long, double>> Losses(NpgsqlDataSource db, long id)
    {
        await using var cmd = db.CreateCommand("""SELECT "Step", "Value" FROM hc.metric_points WHERE "RunId" = $1 AND "Name" = 'train/loss'""");
        cmd.Parameters.Add(new() { Value = id });
        await using var r = await cmd.ExecuteReaderAsync();
        var d = new Dictionary<long, double>();
        while (await r.ReadAsync()) d.Add(r.GetInt64(0), r.GetDouble(1));
        return d;
    }

    [Fact]
    public async Task PointsReachTheDiskBeforeTheirCheckpointAndTheNextAttemptWritesThem()
    {
        var (id, db, leases) = await svc.ClaimedRun("journal-before-checkpoint", "journal-test", 100);
        // Attempt 1 cannot reach the database at all (nothing listens on that port); it reports 97 steps, is about to
        // checkpoint step 97, and dies there (nothing disposed, nothing flushed after that).
        var away = NpgsqlDataSource.Create($"Host=127.0.0.1;Port={HcService.Store.EmbeddedPostgres.FreePort()};Username=x;Password=x;Timeout=1");
        var dying = new PostgresRunSink(away, id, 1, svc.CheckpointRoot, _ => { });
        for (var s = 1; s <= 97; s++) dying.OnStep(Step(s, 10.0 / s));
        dying.BeforeCheckpoint(97);
        Assert.Empty(await Losses(db, id));
        // It dies: the kernel closes its files (the journal is on the disk already; closing writes nothing more).
        var journalBytes = new FileInfo(Assert.Single(PointJournal.Earlier(dying.JournalFolder, 2))).Length;
        dying.Dispose();
        Assert.Equal(journalBytes, new FileInfo(Assert.Single(PointJournal.Earlier(dying.JournalFolder, 2))).Length);

        await TakeOver(db, leases, id);
        var log = new List<string>();
        using (var next = new PostgresRunSink(db, id, 2, svc.CheckpointRoot, log.Add))
        {
            next.Recover(checkpointFolder: null);
            next.Flush(TimeSpan.FromSeconds(30));
            Assert.Empty(PointJournal.Earlier(next.JournalFolder, 2));   // attempt 1's journal, written, is gone
        }
        var losses = await Losses(db, id);
        Assert.Equal(Enumerable.Range(1, 97).Select(s => (long)s), losses.Keys.Order());
        Assert.All(losses, p => Assert.Equal(10.0 / p.Key, p.Value));
        Assert.Contains(log, l => l.Contains("recovered", StringComparison.Ordinal));
        Assert.Empty(Directory.GetFiles(Path.Combine(svc.CheckpointRoot, $"run-{id}", "journal")));   // the run's journals, all written
    }

    [Fact]
    public async Task ASupersededAttemptsPointsFillGapsOnlyAndNeverReplaceTheCurrentAttempts()
    {
        // In the order production sees: attempt 1 is still stopping (its process alive, its journal open) when attempt 2
        // starts and recovers; attempt 1 writes on for a while; attempt 2 recovers again when it ends.
        var (id, db, leases) = await svc.ClaimedRun("journal-superseded", "journal-test", 100);
        await TakeOver(db, leases, id);
        var log = new List<string>();
        var zombie = new PostgresRunSink(db, id, 1, svc.CheckpointRoot, log.Add);
        for (var s = 1; s <= 30; s++) zombie.OnStep(Step(s, 2.0));
        zombie.Flush(TimeSpan.FromSeconds(30));   // refused by the fence: kept in its journal
        Assert.Contains(log, l => l.Contains("no longer running at attempt 1", StringComparison.Ordinal));
        Assert.Empty(await Losses(db, id));

        using var current = new PostgresRunSink(db, id, 2, svc.CheckpointRoot, _ => { });
        current.Recover(checkpointFolder: null);
        current.Flush(TimeSpan.FromSeconds(30));
        Assert.Equal(30, (await Losses(db, id)).Count);   // steps nobody else stored yet
        var zombieJournal = Assert.Single(PointJournal.Earlier(current.JournalFolder, 2));   // still open: not deleted
        for (var s = 1; s <= 50; s++) current.OnStep(Step(s, 1.0));
        current.Flush(TimeSpan.FromSeconds(30));

        for (var s = 31; s <= 60; s++) zombie.OnStep(Step(s, 2.0));
        zombie.Flush(TimeSpan.FromSeconds(30));
        zombie.Dispose();
        Assert.True(File.Exists(zombieJournal));   // it held points nobody stored: kept

        current.Recover(checkpointFolder: null);   // the end of attempt 2
        current.Flush(TimeSpan.FromSeconds(30));
        var losses = await Losses(db, id);
        Assert.Equal(Enumerable.Range(1, 60).Select(s => (long)s), losses.Keys.Order());
        Assert.All(losses, p => Assert.Equal(p.Key <= 50 ? 1.0 : 2.0, p.Value));
        Assert.False(File.Exists(zombieJournal));
        // Progress is the current attempt's own step, never reset by a write of recovered points.
        await using var cmd = db.CreateCommand("""SELECT "Step" FROM hc.runs WHERE "Id" = $1""");
        cmd.Parameters.Add(new() { Value = id });
        Assert.Equal(50L, (long)(await cmd.ExecuteScalarAsync())!);
    }
}
