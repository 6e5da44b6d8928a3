using System.Net;
using HcService.Cli.Children;
using HcService.Core.Training;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>
/// GET /api/runs/{id}/events loses nothing: every status transition and every stored metric point arrives exactly once
/// and in order, for a client that is there from the start, one that connects mid-run, one that connects after the end,
/// and one that drops and resumes with Last-Event-ID. The large runs are written by the training process's own sink
/// (<see cref="PostgresRunSink"/>), two of them at once, so batches commit interleaved as they would from a busy child.
/// </summary>
[Collection("service")]
public class EventStreamTests(ServiceFixture svc)
{
    /// <summary>Points per step the sink writes (train/loss, cross_entropy, lr, grad_norm, tokens_per_second, step_seconds, mfu).</summary>
    const int PointsPerStep = 7;

    async Task<(long Id, NpgsqlDataSource Db)> ClaimedRun(string name, long steps)
    {
        var (id, db, _) = await svc.ClaimedRun(name, "stream-test", steps);
        return (id, db);
    }

    static StepMetrics Step(long step) => new()
    {
        Step = step, Tokens = step * 1024, Loss = 5.0 / Math.Sqrt(step), CrossEntropy = 5.0 / Math.Sqrt(step), Lr = 1e-3, GradNorm = 1,
        StepSeconds = 0.01, TokensPerSecond = 1e5, Mfu = 0.1,
    };

    /// <summary>Writes steps [from, to] through the training process's sink, as its training loop does.</summary>
    void Train(NpgsqlDataSource db, long id, long from, long to, Action<long>? afterStep = null)
    {
        using var sink = new PostgresRunSink(db, id, 1, svc.CheckpointRoot, _ => { });
        for (var s = from; s <= to; s++)
        {
            sink.OnStep(Step(s));
            afterStep?.Invoke(s);
        }
        sink.Flush(TimeSpan.FromMinutes(1));
    }

    static async Task<HashSet<(string, long)>> StoredPoints(NpgsqlDataSource db, long id)
    {
        await using var cmd = db.CreateCommand("""SELECT "Name", "Step" FROM hc.metric_points WHERE "RunId" = $1""");
        cmd.Parameters.Add(new() { Value = id });
        var points = new HashSet<(string, long)>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) points.Add((r.GetString(0), r.GetInt64(1)));
        return points;
    }

    /// <summary>Every stored point exactly once, every transition of a run that went queued -> running -> succeeded exactly
    /// once, in order, the final one last, and ids that only increase.</summary>
    static void AssertComplete(IReadOnlyList<Sse> events, HashSet<(string, long)> stored, string who, long secondWriterFrom = long.MaxValue)
    {
        SseReader.AssertIdsIncrease(events);
        var points = events.Where(e => e.Kind == "metric").Select(e => e.Point).ToList();
        Assert.True(points.Count == stored.Count, $"{who}: {points.Count} points streamed, {stored.Count} stored ({points.Count - points.Distinct().Count()} duplicates)");
        Assert.True(stored.SetEquals(points), $"{who}: {stored.Except(points).Count()} stored points never arrived");
        Assert.Equal(["queued", "running", "succeeded"], events.Where(e => e.Kind == "status").Select(e => e.Status));
        Assert.Equal("succeeded", events[^1].Status);   // after every point
        // Each writer's steps arrive in the order it wrote them (two writers: steps from secondWriterFrom on are the other's).
        var steps = points.Where(p => p.Item1 == "train/loss").Select(p => p.Item2).ToList();
        foreach (var own in steps.GroupBy(s => s >= secondWriterFrom).Select(g => g.ToList()))
            Assert.Equal(own.Order(), own);
    }

    [Fact]
    public async Task ARunWithOver40000PointsStreamsEveryPointOnceToEarlyMidwayAndLateClients()
    {
        const long Steps = 6000;   // 42,000 points, by two writers at once (steps 1-3000 and 3001-6000)
        var (id, db) = await ClaimedRun("stream-40k", Steps);
        await using var _ = db;
        var path = $"api/runs/{id}/events";
        var halfway = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var early = SseReader.Read(svc.Http, path);
        long written = 0, writtenWhenMidwayStarted = -1;
        var midway = halfway.Task.ContinueWith(_ => SseReader.Read(svc.Http, path,
            onEvent: _ => Interlocked.CompareExchange(ref writtenWhenMidwayStarted, Interlocked.Read(ref written), -1))).Unwrap();
        var writers = new[]
        {
            Task.Run(() => Train(db, id, 1, Steps / 2, s => { Interlocked.Exchange(ref written, s); if (s == Steps / 4) halfway.TrySetResult(); })),
            Task.Run(() => Train(db, id, Steps / 2 + 1, Steps)),
        };
        await Task.WhenAll(writers);
        var leases = new RunLifecycle(db, new LeaseOptions());
        Assert.True(await leases.FinishAsync(id, 1, "succeeded", null, CancellationToken.None));
        var late = await SseReader.Read(svc.Http, path);

        var stored = await StoredPoints(db, id);
        Assert.Equal(Steps * PointsPerStep, stored.Count);
        AssertComplete(await early, stored, "the client there from the start", Steps / 2 + 1);
        AssertComplete(await midway, stored, "the client that connected mid-run", Steps / 2 + 1);
        AssertComplete(late, stored, "the client that connected after the end", Steps / 2 + 1);
        // The mid-run client was started once the first writer had written a quarter of the run (its first event may
        // come after either writer has finished: that is timing, not a property, so it is not asserted).
        Assert.True(Interlocked.Read(ref writtenWhenMidwayStarted) >= Steps / 4);
    }

    [Fact]
    public async Task APointThatCommitsLateIsNotSkippedBecauseWritersOfARunCommitInTheOrderOfTheirNumbers()
    {
        var (id, db) = await ClaimedRun("stream-commit-order", 5);
        await using var _ = db;
        var stream = SseReader.Read(svc.Http, $"api/runs/{id}/events");
        // A writer of this run in the middle of its transaction: it holds the run's row lock (as the sink takes it) and
        // has drawn its point's number, but not committed.
        await using var slow = await db.OpenConnectionAsync();
        await using var tx = await slow.BeginTransactionAsync();
        await using (var lockRun = new NpgsqlCommand("""SELECT 1 FROM hc.runs WHERE "Id" = $1 FOR NO KEY UPDATE""", slow, tx) { Parameters = { new() { Value = id } } })
            await lockRun.ExecuteNonQueryAsync();
        await using (var insert = new NpgsqlCommand("""
            INSERT INTO hc.metric_points ("RunId", "Name", "Step", "Tokens", "Value", "Time") VALUES ($1, 'train/loss', 1, 1024, 5, now())
            """, slow, tx) { Parameters = { new() { Value = id } } })
            await insert.ExecuteNonQueryAsync();

        // The sink's batch (steps 2-5) must wait for it: numbered after it, it may only commit after it, or a stream that
        // read between the two commits would have moved past step 1 for good.
        var writer = Task.Run(() => Train(db, id, 2, 5));
        await using var watch = db.CreateCommand("""
            SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR NO KEY UPDATE%' AND pid <> $1
            """);
        watch.Parameters.Add(new() { Value = slow.ProcessID });
        while ((long)(await watch.ExecuteScalarAsync())! == 0)
        {
            if (writer.IsCompleted)
            {
                await writer;
                Assert.Fail("the sink committed its batch while another writer of the run was mid-transaction");
            }
            await Task.Delay(20);
        }
        await tx.CommitAsync();
        await writer;
        Assert.True(await new RunLifecycle(db, new LeaseOptions()).FinishAsync(id, 1, "succeeded", null, CancellationToken.None));
        var events = await stream;
        Assert.Equal([1L, 2, 3, 4, 5], events.Where(e => e.Kind == "metric" && e.Point.Name == "train/loss").Select(e => e.Point.Step));
        AssertComplete(events, await StoredPoints(db, id), "a client there from the start");
    }

    [Fact]
    public async Task AClientThatDropsMidRunResumesWithLastEventIdWithNoGapAndNoDuplicate()
    {
        const long Steps = 3000;
        var (id, db) = await ClaimedRun("stream-resume", Steps);
        await using var _ = db;
        var path = $"api/runs/{id}/events?names=train/loss,train/lr";
        var firstThird = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writer = Task.Run(() => Train(db, id, 1, Steps, s => { if (s == 400) firstThird.TrySetResult(); }));
        await firstThird.Task;

        // Drops after 500 events, resumes (Last-Event-ID header) and drops again after 1000 more, resumes (lastEventId
        // query, for clients that cannot set headers), then follows to the end.
        var first = await SseReader.Read(svc.Http, path, stopAfter: 500);
        var second = await SseReader.Read(svc.Http, path, lastEventId: first[^1].Id, stopAfter: 1000);
        await writer;
        Assert.True(await new RunLifecycle(db, new LeaseOptions()).FinishAsync(id, 1, "succeeded", null, CancellationToken.None));
        var third = await SseReader.Read(svc.Http, $"{path}&lastEventId={Uri.EscapeDataString(second[^1].Id)}");

        var all = first.Concat(second).Concat(third).ToList();
        var stored = (await StoredPoints(db, id)).Where(p => p.Item1 is "train/loss" or "train/lr").ToHashSet();
        Assert.Equal(2 * Steps, stored.Count);
        AssertComplete(all, stored, "the client that dropped twice");
        Assert.Equal(500, first.Count);
        Assert.Equal(1000, second.Count);

        // A resumed stream of a finished run: nothing again, it just ends.
        Assert.Empty(await SseReader.Read(svc.Http, path, lastEventId: third[^1].Id));
        // An id the stream never sent is a clear 400 naming the header, the value and the format.
        using var bad = new HttpRequestMessage(HttpMethod.Get, path);
        bad.Headers.Add("Last-Event-ID", "42");
        using var response = await svc.Http.SendAsync(bad);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadAsStringAsync();
        Assert.Contains("Last-Event-ID = '42'", problem);
        Assert.Contains("s12.m3456", problem);
    }

    [Fact]
    public async Task HcWatchResumesByItselfWhenItsConnectionDropsAndPrintsEveryLineOnce()
    {
        svc.EnsureWorker();
        var id = await svc.SubmitOk("""
            { "name": "watched-through-drops", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 204800, "evalTokens": "1K", "evalInterval": 51200, "checkpointInterval": 204800 } }
            """);
        using var proxy = new DroppingProxy(svc.Url);
        await using var watch = HcLiveProcess.Start("watch", id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--history", "--server", proxy.Url);
        for (var drop = 1; drop <= 2; drop++)
        {
            // Dropped while steps stream in; it resumes after the last event it received and goes on.
            await watch.WaitForLine($@"^run {id} watched-through-drops: step \d+/200 \(", TimeSpan.FromMinutes(2), onlyNew: true);
            proxy.DropAll();
            await watch.WaitForLine($@"run {id}: event stream interrupted .*; resuming after s\d+\.m\d+", TimeSpan.FromMinutes(1), onlyNew: true);
        }
        Assert.Equal(0, await watch.WaitForExit(TimeSpan.FromMinutes(4)));
        Assert.True(proxy.Connections >= 3, $"{proxy.Connections} connections");
        var lines = watch.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.DoesNotContain(lines, l => l.Contains("Exception", StringComparison.Ordinal));
        Assert.Contains($"run {id}: succeeded at step 200/200", lines);
        // Every line once: statuses, validation losses and the loss every 10 steps, none repeated by a resume.
        var said = lines.Where(l => (l.StartsWith($"run {id}: ", StringComparison.Ordinal) || l.StartsWith($"run {id} watched-through-drops: ", StringComparison.Ordinal)
            || l.StartsWith("validation ", StringComparison.Ordinal)) && !l.Contains("interrupted", StringComparison.Ordinal)).ToList();
        Assert.Equal(said.Count, said.Distinct().Count());
        Assert.Equal(["queued", "running", "succeeded"], said.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"^run \d+: (\w+) \(attempt")).Where(m => m.Success).Select(m => m.Groups[1].Value));
        // Progress lines (stdout is not a terminal): every 10 steps, in order, with the percentage and an ETA once measured.
        var progress = said.Select(l => System.Text.RegularExpressions.Regex.Match(l, @": step (\d+)/200 \((\d+\.\d)%\) \| .* \| ETA (\S+)")).Where(m => m.Success).ToList();
        var steps = progress.Select(m => long.Parse(m.Groups[1].Value)).ToList();
        Assert.Equal(steps.Order(), steps);
        Assert.Equal(steps.Distinct().Count(), steps.Count);   // strictly increasing: no step printed twice by a resume
        Assert.True(steps.Count >= 10, string.Join("\n", said));
        Assert.All(progress, m => Assert.Equal((100.0 * long.Parse(m.Groups[1].Value) / 200).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture), m.Groups[2].Value));
        Assert.Contains(progress, m => System.Text.RegularExpressions.Regex.IsMatch(m.Groups[3].Value, @"^\d+(s|m\d\ds)$") && m.Groups[1].Value != "200");
        Assert.Equal(5, said.Count(l => l.StartsWith("validation valid-austen-bytes: loss", StringComparison.Ordinal)));   // steps 0, 50, 100, 150, 200
    }

    const string Fast = """
        { "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
          "training": { "tokenBudget": 8192, "evalTokens": "1K", "evalInterval": 8192, "checkpointInterval": 8192 } }
        """;

    [Fact]
    public async Task TwentyFastRunsStreamEveryTransitionAndEveryStepExactlyOnceInOrder()
    {
        svc.EnsureWorker();
        var ids = new List<long>();
        var streams = new List<Task<List<Sse>>>();
        for (var i = 0; i < 20; i++)
        {
            // Submitted and watched at once: transitions come seconds apart, faster than any poll would have seen them.
            var id = await svc.SubmitOk(Fast.Replace("NAME", $"fast-{i}"));
            ids.Add(id);
            streams.Add(SseReader.Read(svc.Http, $"api/runs/{id}/events?names=train/loss", timeout: TimeSpan.FromMinutes(8)));
        }
        for (var i = 0; i < ids.Count; i++)
        {
            var events = await streams[i];
            SseReader.AssertIdsIncrease(events);
            var statuses = events.Where(e => e.Kind == "status").ToList();
            Assert.Equal(["queued", "running", "succeeded"], statuses.Select(e => e.Status));
            Assert.Equal([0, 1, 1], statuses.Select(e => e.Data["attempt"]!.GetValue<int>()));
            Assert.Equal([null, "queued", "running"], statuses.Select(e => e.Data["previous"]?.GetValue<string>()));
            Assert.Equal("succeeded", events[^1].Status);
            var stored = (await svc.Series(ids[i], "train/loss")).Select(p => p.Step).ToList();
            Assert.Equal(statuses[^1].Data["totalSteps"]!.GetValue<long>(), stored.Count);
            Assert.Equal(stored, events.Where(e => e.Kind == "metric").Select(e => e.Point.Step));   // each once, in order
            Assert.All(events.Where(e => e.Kind == "metric"), e => Assert.Equal("train/loss", e.Point.Name));
        }
    }
}
