using HcService.Store.Runs;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace HcService.Store;

/// <summary>
/// The service's own instruments, in one place (docs/design.md section 7; docs/telemetry.md lists them with their Prometheus
/// names). Plain System.Diagnostics types: whichever process uses them (API, worker) exports them through
/// OpenTelemetry (HcService.Api.Telemetry).
/// </summary>
public static class HcInstruments
{
    public const string Name = "HcService";
    public static readonly ActivitySource Source = new(Name);
    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> RunsSubmitted = Meter.CreateCounter<long>("hc.runs.submitted", description: "Runs created through POST /api/runs and /api/groups");
    public static readonly Counter<long> RunsRequeued = Meter.CreateCounter<long>("hc.runs.requeued", description: "Runs requeued after their worker was lost (lease expired)");
    public static readonly Counter<long> WorkerHeartbeats = Meter.CreateCounter<long>("hc.worker.heartbeats", description: "Lease renewals of the worker");
    public static readonly Counter<long> RunAttempts = Meter.CreateCounter<long>("hc.run.attempts", description: "Run attempts ended, by outcome");
    public static readonly Histogram<double> DispatchLatency = Meter.CreateHistogram<double>("hc.dispatch.latency", unit: "s",
        description: "Time from submission to running, observed when a worker claims the run");
}
