using HcService.Contract.Metrics;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using HcService.Api;
using HcService.Api.Auth;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Builder;
using Npgsql;
using HcService.Cli.Children;
using HcService.Cli.Client;
using HcService.Cli.Up;

namespace HcService.Cli.Bench;

/// <summary>
/// `hc bench service`: the service's own figures on this machine, against a private PostgreSQL, the API in this
/// process and real `hc worker` processes: submission latency under concurrent clients, dispatch latency (submit to
/// running on an idle worker), metric ingestion through the training child's sink, the downsampled metric query over a
/// 1M-point series, and recovery from a killed worker (kill to running again) with the production lease length.
/// </summary>
static class ServiceBench
{
    public static Command Create()
    {
        var clients = new Option<int>("--clients") { DefaultValueFactory = _ => 32, Description = "Concurrent submitting clients" };
        var submissions = new Option<int>("--submissions") { DefaultValueFactory = _ => 2000, Description = "Submissions in total" };
        var points = new Option<int>("--points") { DefaultValueFactory = _ => 1_000_000, Description = "Metric points to ingest, and the length of the queried series" };
        var dispatches = new Option<int>("--dispatches") { DefaultValueFactory = _ => 5, Description = "Runs submitted one at a time to an idle worker" };
        var lease = new Option<int>("--lease-seconds") { DefaultValueFactory = _ => 30, Description = "Lease length for the recovery figure (production default 30)" };
        var output = new Option<string?>("--out") { Description = "Append the result as a Markdown section to this file (e.g. BENCHMARKS.md)" };
        var cmd = new Command("service", "Service figures: submission and dispatch latency, metric ingestion, downsampled query, recovery from a killed worker");
        foreach (var o in new Option[] { clients, submissions, points, dispatches, lease, output }) cmd.Add(o);
        cmd.SetAction(async (r, ct) =>
        {
            var report = await Run(r.GetValue(clients), r.GetValue(submissions), r.GetValue(points), r.GetValue(dispatches), r.GetValue(lease),
                $"hc bench service --clients {r.GetValue(clients)} --submissions {r.GetValue(submissions)} --points {r.GetValue(points)} --dispatches {r.GetValue(dispatches)} --lease-seconds {r.GetValue(lease)}", ct);
            Console.WriteLine(report);
            if (r.GetValue(output) is { } file) await File.AppendAllTextAsync(file, "\n" + report, ct);
            return 0;
        });
        return cmd;
    }

    const string Tiny = """{ "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": BUDGET, "evalTokens": "1K", "checkpointInterval": CKPT } }""";

    static async Task<string> Run(int clients, int submissions, int points, int dispatches, int leaseSeconds, string command, CancellationToken ct)
    {
        var home = Path.Combine("/var/tmp", $"hc-bench-{Environment.ProcessId}");
        var dataRoot = DataRootOption.Resolve(null);
        var checkpoints = Path.Combine(home, "checkpoints");
        Directory.CreateDirectory(checkpoints);
        Environment.SetEnvironmentVariable("HC_LEASE_SECONDS", leaseSeconds.ToString(CultureInfo.InvariantCulture));
        var rows = new List<(string Figure, string Value, string Target)>();
        await using var pg = new EmbeddedPostgres(Path.Combine(home, "postgres"));
        await pg.StartAsync(ct);
        var url = $"http://127.0.0.1:{EmbeddedPostgres.FreePort()}";
        var app = ApiApp.BuildLocal(pg.ConnectionString, dataRoot, checkpoints, url);
        await ApiApp.MigrateAsync(app.Services);
        var key = (await ApiKeys.BootstrapAsync(app.Services, ct))!;
        await app.StartAsync(ct);
        await using var db = NpgsqlDataSource.Create(pg.ConnectionString);
        var workers = new List<Process>();
        try
        {
            using var http = ClientCommands.Client(url, key);
            http.Timeout = TimeSpan.FromMinutes(2);

            // 1. Submission latency: N clients submitting at once (to the cuda queue, which no worker here serves).
            Console.WriteLine($"submissions: {submissions} from {clients} clients...");
            await Submit(http, 64, clients, ct);   // warm-up
            var clock = Stopwatch.StartNew();
            var latencies = await Submit(http, submissions, clients, ct);
            var wall = clock.Elapsed.TotalSeconds;
            rows.Add(("submission latency p50 / p99", $"{Pct(latencies, 50):F1} / {Pct(latencies, 99):F1} ms", "-"));
            rows.Add(("submission throughput", $"{submissions / wall:F0} runs/s ({clients} clients)", "-"));

            // 2. Dispatch latency: submit to running, on an idle worker, one run at a time.
            Console.WriteLine("dispatch...");
            workers.Add(UpCommand.StartWorker(pg.ConnectionString, dataRoot, checkpoints, Path.Combine(home, "worker.log")));
            var dispatch = new List<double>();
            for (var i = 0; i <= dispatches; i++)
            {
                var id = await SubmitRun(http, $"dispatch-{i}", 2048, 2048, ct);
                await WaitUntil(db, id, $"\"Status\" NOT IN ('{RunStatus.Queued}', '{RunStatus.Running}')", TimeSpan.FromMinutes(3), ct);
                if (i == 0) continue;   // the first one warms the worker up
                dispatch.Add(await Scalar<double>(db, """SELECT (extract(epoch FROM "StartedAt" - "CreatedAt") * 1000)::float8 FROM hc.runs WHERE "Id" = @id""", id, ct));
                await Task.Delay(2000, ct);   // the worker is idle again, polling its queue
            }
            rows.Add(("dispatch latency p50 / max (submit to running, idle worker)", $"{Pct(dispatch, 50):F0} / {dispatch.Max():F0} ms", "< 2 s"));

            // 3. Metric ingestion through the training child's sink (batched, fenced upserts), one run, then 4 at once.
            Console.WriteLine($"ingestion: {points} points...");
            rows.Add(("metric ingestion, one run's sink", $"{await Ingest(db, pg.ConnectionString, checkpoints, 1, points, ct):N0} points/s", ">= 100k points/s"));
            rows.Add(("metric ingestion, 4 runs' sinks at once", $"{await Ingest(db, pg.ConnectionString, checkpoints, 4, points, ct):N0} points/s", ">= 100k points/s"));

            // 4. The downsampled query: one series of `points` points, to 1000.
            Console.WriteLine("query...");
            var seriesRun = await NewRun(db, pg.ConnectionString, "query", ct);
            // Written as a training attempt writes, through the run store's attempt writer.
            var noise = new Random(1);
            new AttemptWriter(db, seriesRun, 1).Commit(new AttemptBatch
            {
                Points = [.. Enumerable.Range(1, points).Select(s => new PointValue(MetricRegistry.TrainLoss.Name, s, s * 1024L, 3 + Math.Sin(s / 1000.0) + noise.NextDouble() * 0.1))],
            });
            await Execute(db, "VACUUM ANALYZE hc.metric_points", 0, ct);
            var query = new List<double>();
            for (var i = 0; i < 25; i++)
            {
                var sw = Stopwatch.StartNew();
                var series = (await http.GetFromJsonAsync<JsonArray>($"/api/runs/{seriesRun}/metrics?names=train/loss&maxPoints=1000", ct))!;
                query.Add(sw.Elapsed.TotalMilliseconds);
                if (series[0]!["points"]!.AsArray().Count != 1000) throw new InvalidOperationException($"the query returned {series[0]!["points"]!.AsArray().Count} points, not 1000");
            }
            query = query.Skip(5).ToList();
            rows.Add(($"metric query, {points:N0} points downsampled to 1000 (HTTP, p50 / p99)", $"{Pct(query, 50):F1} / {Pct(query, 99):F1} ms", "< 100 ms"));

            // 5. Recovery: a worker killed mid-run (and its training process: a machine lost), then a new worker.
            foreach (var what in new[] { "worker process only", "worker and training process (machine lost)" })
            {
                Console.WriteLine($"recovery: {what}...");
                var id = await SubmitRun(http, "recovery", 20_000_000, 20480, ct);
                await WaitUntil(db, id, $"\"Status\" = '{RunStatus.Running}' AND \"Step\" >= 30", TimeSpan.FromMinutes(3), ct);
                var owner = await Scalar<string>(db, """SELECT "LeaseOwner" FROM hc.runs WHERE "Id" = @id""", id, ct);
                var victim = workers.Single(w => w.Id == int.Parse(owner.Split(':')[1], CultureInfo.InvariantCulture));
                var child = Process.GetProcesses().Where(p => p.Id != victim.Id).FirstOrDefault(p => IsChildOf(p, victim.Id));
                var kill = Stopwatch.StartNew();
                victim.Kill();
                if (what.StartsWith("worker and", StringComparison.Ordinal)) child?.Kill();
                workers.Add(UpCommand.StartWorker(pg.ConnectionString, dataRoot, checkpoints, Path.Combine(home, "worker.log")));
                await WaitUntil(db, id, $"\"Status\" = '{RunStatus.Running}' AND \"Attempt\" = 2", TimeSpan.FromMinutes(5), ct);
                rows.Add(($"recovery after killing the {what}", $"{kill.Elapsed.TotalSeconds:F1} s to running again (lease {leaseSeconds} s)", "< 90 s"));
                using var cancel = await http.PostAsync($"/api/runs/{id}/cancel", null, ct);
                await WaitUntil(db, id, $"\"Status\" IN ('{RunStatus.Cancelled}', '{RunStatus.Failed}', '{RunStatus.Succeeded}')", TimeSpan.FromMinutes(2), ct);
            }
        }
        finally
        {
            foreach (var w in workers.Where(w => !w.HasExited)) { w.Kill(entireProcessTree: true); await w.WaitForExitAsync(CancellationToken.None); }
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            await pg.StopAsync();
            try { Directory.Delete(home, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"### Service figures ({DateTime.UtcNow:yyyy-MM-dd})");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- command: `{command}`");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- machine: {BenchCommand.Machine()}; PostgreSQL {EmbeddedPostgres.FindBinDir().Split('/')[^2]} on the same machine, the API in the bench process, workers as child processes");
        sb.AppendLine();
        sb.AppendLine("| figure | measured | target |");
        sb.AppendLine("|---|---|---|");
        foreach (var (figure, value, target) in rows) sb.AppendLine(CultureInfo.InvariantCulture, $"| {figure} | {value} | {target} |");
        return sb.ToString();
    }

    static bool IsChildOf(Process p, int parent)
    {
        try { return File.ReadAllText($"/proc/{p.Id}/stat").Split(") ")[1].Split(' ')[1] == parent.ToString(CultureInfo.InvariantCulture); }
        catch (IOException) { return false; }
    }

    static async Task<List<double>> Submit(HttpClient http, int total, int clients, CancellationToken ct)
    {
        var latencies = new List<double>();
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= total)
            {
                var sw = Stopwatch.StartNew();
                using var response = await http.PostAsync("/api/runs?queue=cuda",
                    new StringContent(Tiny.Replace("NAME", "bench").Replace("BUDGET", "20480").Replace("CKPT", "20480"), Encoding.UTF8, "application/json"), ct);
                var ms = sw.Elapsed.TotalMilliseconds;
                response.EnsureSuccessStatusCode();
                lock (latencies) latencies.Add(ms);
            }
        }));
        return latencies;
    }

    static async Task<long> SubmitRun(HttpClient http, string name, long budget, long checkpointEvery, CancellationToken ct)
    {
        var spec = Tiny.Replace("NAME", name).Replace("BUDGET", budget.ToString(CultureInfo.InvariantCulture)).Replace("CKPT", checkpointEvery.ToString(CultureInfo.InvariantCulture));
        using var response = await http.PostAsync("/api/runs", new StringContent(spec, Encoding.UTF8, "application/json"), ct);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonNode>(ct))!["id"]!.GetValue<long>();
    }

    /// <summary>Points per second through <see cref="PostgresRunSink"/> from <paramref name="runs"/> runs at once.</summary>
    static async Task<double> Ingest(NpgsqlDataSource db, string connectionString, string checkpoints, int runs, int points, CancellationToken ct)
    {
        var ids = new List<long>();
        for (var i = 0; i < runs; i++) ids.Add(await NewRun(db, connectionString, $"ingest-{i}", ct));
        const int perStep = 7;   // the metrics of a dense run's step
        var steps = points / perStep / runs;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(ids.Select(id => Task.Run(() =>
        {
            using var sink = new PostgresRunSink(db, id, 1, checkpoints, _ => { });
            for (var s = 1; s <= steps; s++)
                sink.OnStep(new StepMetrics { Step = s, Tokens = s * 1024L, Loss = 3, CrossEntropy = 3, Lr = 1e-3, GradNorm = 1, StepSeconds = 0.1, TokensPerSecond = 1e4, Mfu = 0.4 });
            sink.Flush(TimeSpan.FromMinutes(1));
        }, ct)));
        var seconds = clock.Elapsed.TotalSeconds;
        var written = await Scalar<long>(db, """SELECT count(*) FROM hc.metric_points WHERE "RunId" = ANY(@ids)""", 0, ct, ("ids", ids.ToArray()));
        if (written != (long)steps * perStep * runs) throw new InvalidOperationException($"{written} points written, {steps * perStep * runs} sent");
        return written / seconds;
    }

    /// <summary>A run on the "bench" queue (no worker serves it), queued and then started at attempt 1 with a day's lease,
    /// through the run lifecycle as a worker would: the benchmark writes into it as that attempt.</summary>
    static async Task<long> NewRun(NpgsqlDataSource db, string connectionString, string name, CancellationToken ct)
    {
        await using var context = new HcDbContext(HcDbContext.Options(connectionString));
        var now = DateTimeOffset.UtcNow;
        var run = new Run
        {
            Name = name, Spec = "{}", Preset = "tiny", Architecture = "dense", Connection = "residual", Rate = 1, Tags = ["bench"],
            Status = RunStatus.Queued, Queue = "bench", MaxAttempts = 1, CreatedAt = now, UpdatedAt = now,
        };
        context.Runs.Add(run);
        await context.SaveChangesAsync(ct);
        var lifecycle = new RunLifecycle(db, new LeaseOptions { Duration = TimeSpan.FromDays(1) });
        if (await lifecycle.StartAttemptAsync(run.Id, "bench:0:bench", ct) is not { Attempt: 1 })
            throw new InvalidOperationException($"run {run.Id} could not be started at attempt 1");
        return run.Id;
    }

    static async Task WaitUntil(NpgsqlDataSource db, long id, string condition, TimeSpan timeout, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (!await Scalar<bool>(db, $"""SELECT {condition} FROM hc.runs WHERE "Id" = @id""", id, ct))
        {
            if (sw.Elapsed > timeout) throw new TimeoutException($"run {id}: not ({condition}) after {timeout}");
            await Task.Delay(50, ct);
        }
    }

    static async Task<T> Scalar<T>(NpgsqlDataSource db, string sql, long id, CancellationToken ct, params (string Name, object Value)[] extra)
    {
        await using var cmd = db.CreateCommand(sql);
        cmd.Parameters.AddWithValue("id", id);
        foreach (var (n, v) in extra) cmd.Parameters.AddWithValue(n, v);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }

    static async Task Execute(NpgsqlDataSource db, string sql, long id, CancellationToken ct, params (string Name, object Value)[] extra)
    {
        await using var cmd = db.CreateCommand(sql);
        cmd.CommandTimeout = 600;
        if (id != 0) cmd.Parameters.AddWithValue("id", id);
        foreach (var (n, v) in extra) cmd.Parameters.AddWithValue(n, v);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    static double Pct(List<double> xs, double p)
    {
        var sorted = xs.Order().ToList();
        return sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];
    }
}
