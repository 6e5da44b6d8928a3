using HcService.Contract.Jobs;
using HcService.Store;
using HcService.Store.Runs;
using Npgsql;
using Microsoft.Extensions.Diagnostics.Metrics;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace HcService.Api.Telemetry;

/// <summary>
/// OpenTelemetry in one place for the API and the workers (eShop's ServiceDefaults): traces for HTTP, Npgsql and the
/// service's own spans (a span per run attempt), the service's and training metrics, logs with trace and span ids, a
/// Prometheus scrape endpoint (/metrics), and OTLP export when the standard OTEL_EXPORTER_OTLP_ENDPOINT is set
/// (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured too). docs/telemetry.md lists every signal.
/// </summary>
public static class HcTelemetry
{
    static bool Otlp => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));

    /// <param name="builder">The API's or the worker's host builder.</param>
    /// <param name="serviceName">hc-api or hc-worker (OTEL_SERVICE_NAME overrides it).</param>
    /// <param name="configureTracing">Extra tracing setup (the tests add an in-memory exporter).</param>
    public static IHostApplicationBuilder AddHcTelemetry(this IHostApplicationBuilder builder, string serviceName, Action<TracerProviderBuilder>? configureTracing = null)
    {
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        if (Otlp) builder.Logging.AddOpenTelemetry(o => { o.IncludeFormattedMessage = true; o.IncludeScopes = true; o.AddOtlpExporter(); });
        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") ?? serviceName))
            .WithTracing(t =>
            {
                t.AddSource(HcInstruments.Name).AddAspNetCoreInstrumentation(o => o.Filter = http => http.Request.Path != "/metrics").AddNpgsql();
                if (Otlp) t.AddOtlpExporter();
                configureTracing?.Invoke(t);
            })
            .WithMetrics(m =>
            {
                m.AddMeter(HcInstruments.Name).AddPrometheusExporter();
                if (Otlp) m.AddOtlpExporter();
            });
        // ASP.NET Core's and Kestrel's meters come from this host's IMeterFactory: listen to this host's only. A
        // subscription by name (AddMeter) would take every host's same-named meter in the process into one stream,
        // count the other hosts' requests as this one's, and lose the stream when another host is disposed.
        foreach (var meter in (string[])["Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel"])
            builder.Metrics.EnableMetrics(meter, instrumentName: null, listenerName: "OpenTelemetry", scopes: MeterScope.Local);
        return builder;
    }
}

/// <summary>
/// The API's view of the service, as gauges read from PostgreSQL when scraped (cached for 5 s so that scrapes stay
/// cheap): runs by state, Hangfire jobs waiting per queue, workers with a heartbeat in the last minute.
/// </summary>
public sealed class ServiceGauges
{
    readonly NpgsqlDataSource db;
    readonly object gate = new();
    DateTime readAt = DateTime.MinValue;
    (Dictionary<string, long> Runs, Dictionary<string, long> Queues, long Workers) last = ([], [], 0);

    public ServiceGauges(NpgsqlDataSource db)
    {
        this.db = db;
        // Counters appear in the scrape from the start (0), not only after their first event.
        HcInstruments.RunsSubmitted.Add(0);
        HcInstruments.RunsRequeued.Add(0);
        HcInstruments.Meter.CreateObservableGauge("hc.runs", () => RunStatus.All.Select(s =>
            new System.Diagnostics.Metrics.Measurement<long>(Read().Runs.GetValueOrDefault(s), new KeyValuePair<string, object?>("state", s))),
            description: "Runs in each state");
        HcInstruments.Meter.CreateObservableGauge("hc.queue.depth", () => new[] { DeviceQueues.Cpu, DeviceQueues.Cuda }.Select(q =>
            new System.Diagnostics.Metrics.Measurement<long>(Read().Queues.GetValueOrDefault(q), new KeyValuePair<string, object?>("queue", q))),
            description: "Hangfire jobs enqueued and waiting for a worker");
        HcInstruments.Meter.CreateObservableGauge("hc.workers.alive", () => Read().Workers, description: "Workers with a heartbeat in the last minute");
    }

    (Dictionary<string, long> Runs, Dictionary<string, long> Queues, long Workers) Read()
    {
        lock (gate)
        {
            if (DateTime.UtcNow - readAt < TimeSpan.FromSeconds(5)) return last;
            try
            {
                using var conn = db.OpenConnection();
                var runs = new Dictionary<string, long>();
                using (var cmd = new NpgsqlCommand("""SELECT "Status", count(*) FROM hc.runs GROUP BY "Status" """, conn))
                using (var r = cmd.ExecuteReader()) while (r.Read()) runs[r.GetString(0)] = r.GetInt64(1);
                var queues = new Dictionary<string, long>();
                using (var cmd = new NpgsqlCommand("SELECT queue, count(*) FROM hangfire.jobqueue WHERE fetchedat IS NULL GROUP BY queue", conn))
                using (var r = cmd.ExecuteReader()) while (r.Read()) queues[r.GetString(0)] = r.GetInt64(1);
                using (var cmd = new NpgsqlCommand("SELECT count(*) FROM hangfire.server WHERE lastheartbeat > now() - interval '1 minute'", conn))
                    last = (runs, queues, (long)cmd.ExecuteScalar()!);
                readAt = DateTime.UtcNow;
            }
            catch (Exception e) when (DbRetry.IsTransient(e) || e is PostgresException) { /* keep the last values while the database is away */ }
            return last;
        }
    }
}
