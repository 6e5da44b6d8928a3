using HcService.Store;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HcService.Api.Telemetry;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using OpenTelemetry.Trace;

namespace HcService.Service.Tests;

/// <summary>
/// Observability end to end: a real Prometheus server (the Debian package, on loopback) scrapes the API and a worker
/// during a run and answers PromQL for that run's loss and the runs-by-state gauge; every metric the Grafana dashboards
/// query is one the service really exports; a run's execution span links to the request that submitted it.
/// </summary>
[Collection("service")]
public class TelemetryTests(ServiceFixture svc)
{
    /// <summary>MoE with dynamic HC, so that the MoE and HC statistics gauges are exported too; 300 steps.</summary>
    const string Spec = """
        { "name": "telemetry", "model": { "preset": "tiny" }, "architecture": "moe", "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 307200, "evalTokens": "2K", "evalInterval": 102400, "checkpointInterval": 307200 } }
        """;

    [Fact]
    public async Task PrometheusScrapesTheApiAndAWorkerAndTheDashboardsQueryOnlyExportedMetrics()
    {
        svc.EnsureWorker();
        var prometheus = File.Exists("/usr/bin/prometheus") ? "/usr/bin/prometheus"
            : throw new InvalidOperationException("prometheus is not installed: scripts/setup.sh installs the Debian package");
        var home = RepoPaths.TempDir("prometheus");
        var targets = svc.LiveWorkerMetricsUrls.Select(u => new Uri(u)).Select(u => $"'{u.Host}:{u.Port}'");
        await File.WriteAllTextAsync(Path.Combine(home, "prometheus.yml"), $"""
            global: {"{"} scrape_interval: 1s, scrape_timeout: 1s {"}"}
            scrape_configs:
              - job_name: api
                static_configs: [{"{"} targets: ['{new Uri(svc.Url).Host}:{new Uri(svc.Url).Port}'] {"}"}]
              - job_name: worker
                static_configs: [{"{"} targets: [{string.Join(", ", targets)}] {"}"}]
            """);
        var port = HcService.Store.EmbeddedPostgres.FreePort();
        using var server = Process.Start(new ProcessStartInfo(prometheus,
            [$"--config.file={home}/prometheus.yml", $"--storage.tsdb.path={home}/data", $"--web.listen-address=127.0.0.1:{port}"])
            { RedirectStandardError = true, RedirectStandardOutput = true })!;
        server.ErrorDataReceived += (_, _) => { };
        server.BeginErrorReadLine();
        using var promql = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        try
        {
            var id = await svc.SubmitOk(Spec);
            await svc.WaitForStep(id, 20);
            // While it trains: what the API and the worker export, by name.
            var exported = new HashSet<string>(StringComparer.Ordinal);
            foreach (var url in svc.LiveWorkerMetricsUrls.Append(svc.Url + "/metrics")) exported.UnionWith(MetricNames(await svc.Http.GetStringAsync(url)));
            Assert.Contains("hc_composite_gain", exported);   // the stream-mixing connection's residual-path gain, during the run
            Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(5))).Status);
            // ... and stored: every 10 steps and at the last, a finite gain >= 0.
            var gain = await svc.Series(id, "hc/composite_gain");
            Assert.Equal(Enumerable.Range(1, 30).Select(k => 10L * k), gain.Select(p => p.Step));
            Assert.All(gain, p => Assert.True(double.IsFinite(p.Value) && p.Value >= 0, $"gain {p.Value} at step {p.Step}"));

            // PromQL: the run's training-loss series (over the last minutes) and the runs-by-state gauge.
            var loss = await Query(promql, $"max_over_time(hc_train_loss{{run_id=\"{id}\"}}[10m])");
            Assert.True(loss.Count >= 1, $"no hc_train_loss series for run {id}");
            Assert.Equal("dynamic-hc", loss[0]!["metric"]!["connection"]!.GetValue<string>());
            var succeeded = await Query(promql, "hc_runs{state=\"succeeded\"}");
            Assert.True(double.Parse(succeeded.Single()!["value"]![1]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) >= 1);

            // Every metric a dashboard panel queries is one that was exported.
            var dashboards = Path.Combine(RepoPaths.Root, "deploy", "grafana", "dashboards");
            var queried = DashboardQueries.MetricNames(dashboards);
            Assert.True(queried.Count >= 20, $"only {queried.Count} metric names found in the dashboards");
            var missing = queried.Where(m => !exported.Contains(m)).Order(StringComparer.Ordinal).ToList();
            Assert.True(missing.Count == 0, $"dashboards query metrics nobody exports: {string.Join(", ", missing)}\nexported: {string.Join(", ", exported.Order(StringComparer.Ordinal))}");
        }
        finally
        {
            server.Kill();
            await server.WaitForExitAsync();
        }
    }

    /// <summary>Metric names in a Prometheus text exposition (histograms also under their _bucket/_sum/_count names).</summary>
    static IEnumerable<string> MetricNames(string exposition) =>
        exposition.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => Regex.Match(l, "^[a-zA-Z_:][a-zA-Z0-9_:]*").Value).Where(n => n.Length > 0)
            .SelectMany(n => Regex.Replace(n, "_(bucket|sum|count)$", "") is var b && b != n ? new[] { n, b } : [n]);

    /// <summary>An instant PromQL query, retried until Prometheus has scraped enough (up to 60 s).</summary>
    static async Task<JsonArray> Query(HttpClient promql, string query)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var result = (await promql.GetFromJsonAsync<JsonNode>($"api/v1/query?query={Uri.EscapeDataString(query)}"))!["data"]!["result"]!.AsArray();
                if (result.Count > 0 || sw.Elapsed > TimeSpan.FromSeconds(60)) return result;
            }
            catch (HttpRequestException) when (sw.Elapsed < TimeSpan.FromSeconds(60)) { }
            await Task.Delay(500);
        }
    }

    /// <summary>
    /// Other hosts in the same process (the tests run a worker in-process; an embedding application could too) that
    /// come and go take none of the API's metrics with them. OpenTelemetry merges same-named instruments of same-named
    /// meters into one stream and drops the stream when any of them completes (its slot goes to the next instrument
    /// published), so a provider that listened to every "Microsoft.AspNetCore.Hosting" meter in the process stopped
    /// exporting the API's http.server.* metrics once a second host had been disposed and a third one started.
    /// </summary>
    [Fact]
    public async Task HostsComingAndGoingInTheProcessKeepTheApisHttpMetrics()
    {
        for (var round = 0; round < 3; round++)
        {
            var url = $"http://127.0.0.1:{HcService.Store.EmbeddedPostgres.FreePort()}";
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls(url);
            builder.AddHcTelemetry("hc-other");
            await using var other = builder.Build();
            other.MapGet("/ping", () => "pong");
            await other.StartAsync();
            Assert.Equal("pong", await svc.Http.GetStringAsync(url + "/ping"));
            await other.StopAsync();
        }
        for (var scrape = 0; scrape < 2; scrape++)
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, (await svc.Http.GetAsync(svc.Url + "/api/runs?limit=1")).StatusCode);
            var api = await svc.Http.GetStringAsync(svc.Url + "/metrics");
            var names = MetricNames(api).ToHashSet(StringComparer.Ordinal);
            Assert.Contains("http_server_request_duration_seconds_count", names);
            Assert.Contains("http_server_active_requests", names);
            Assert.DoesNotContain("/ping", api);   // and none of the other hosts' requests are counted as the API's
        }
    }

    [Fact]
    public async Task ARunsExecutionSpanIsLinkedToTheRequestThatSubmittedIt()
    {
        // This test's own worker, in this process, exporting spans to memory; the fixture's workers step aside.
        foreach (var w in svc.LiveWorkers) { w.Kill(); await w.WaitForExitAsync(); }
        var spans = new List<Activity>();
        var url = $"http://127.0.0.1:{HcService.Store.EmbeddedPostgres.FreePort()}";
        var logs = new CapturedLogs();
        var worker = HcService.Cli.Worker.WorkerCommand.CreateHost(svc.Postgres.ConnectionString,
            new HcPaths { DataRoot = svc.DataRoot, CheckpointRoot = svc.CheckpointRoot }, "cpu", url, t => t.AddInMemoryExporter(spans),
            b => Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(b.Services, logs));
        await worker.StartAsync();
        try
        {
            var id = await svc.SubmitOk("""
                { "name": "traced", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "static-hc", "rate": 2 },
                  "training": { "tokenBudget": 10240, "evalTokens": "2K" } }
                """);
            Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(3))).Status);
            await Task.Delay(500);
            Activity[] all;
            lock (spans) all = [.. spans];
            var attempt = all.Single(a => a.DisplayName == "hc.run.attempt" && Equals(a.GetTagItem("hc.run_id"), id));
            Assert.Equal("static-hc", attempt.GetTagItem("hc.connection"));
            Assert.Equal(2, attempt.GetTagItem("hc.rate"));
            Assert.Equal("tiny", attempt.GetTagItem("hc.preset"));
            Assert.Equal("succeeded", attempt.GetTagItem("hc.outcome"));
            var submit = all.Single(a => a.Kind == ActivityKind.Server && a.GetTagItem("http.route") is "/api/runs/" or "/api/runs"
                && a.GetTagItem("http.request.method") is "POST" && a.TraceId == attempt.Links.Single().Context.TraceId);
            Assert.Equal(submit.SpanId, attempt.Links.Single().Context.SpanId);
            Assert.NotEqual(submit.TraceId, attempt.TraceId);   // linked, not nested: the request's trace ended with its answer
            Assert.Contains(all, a => a.TraceId == attempt.TraceId && a.Source.Name.StartsWith("Npgsql", StringComparison.Ordinal));   // its queries
            // The worker's and its training process's events are log records in the attempt's trace (so they reach
            // OpenTelemetry with it): the worker's own, and each line the child wrote, prefixed with the run.
            var records = logs.Records;
            Assert.Contains(records, r => r.Message.StartsWith($"run {id} attempt 1: started child process", StringComparison.Ordinal) && r.TraceId == attempt.TraceId);
            var childLines = records.Where(r => r.Message.StartsWith($"[run {id}] ", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(childLines);
            Assert.All(childLines, r => Assert.Equal(attempt.TraceId, r.TraceId));
            Assert.Contains(childLines, r => r.Message.Contains("succeeded", StringComparison.Ordinal));
        }
        finally
        {
            await worker.StopAsync();
            await worker.DisposeAsync();
            // Hangfire keeps one log provider per process, and this host's is disposed now: back to the default, so
            // that the API in this process (the fixture's) keeps creating jobs. (In production each process has one host.)
            Hangfire.Logging.LogProvider.SetCurrentLogProvider(null);
            svc.EnsureWorker();
        }
    }
}

/// <summary>Log records with the trace they were written in.</summary>
sealed class CapturedLogs : Microsoft.Extensions.Logging.ILoggerProvider
{
    public sealed record Entry(string Category, string Message, ActivityTraceId? TraceId);
    readonly List<Entry> entries = [];
    public IReadOnlyList<Entry> Records { get { lock (entries) return [.. entries]; } }
    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
    public void Dispose() { }

    sealed class Logger(CapturedLogs owner, string category) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            lock (owner.entries) owner.entries.Add(new(category, formatter(state, exception), Activity.Current?.TraceId));
        }
    }
}
