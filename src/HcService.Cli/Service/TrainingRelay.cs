using HcService.Store.Runs;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Jobs;

namespace HcService.Cli.Service;

/// <summary>One training measurement: instrument name, value, and labels besides the run's.</summary>
public sealed record TrainingSample(string G, double V, Dictionary<string, string>? T = null);

/// <summary>
/// The training metrics of the runs a process knows (docs/design.md section 7): gauges labelled with the run's id, name,
/// preset, architecture, connection and rate. In a worker they are fed by its training child through stdout (one
/// "@@hc-metrics [...]" line per step, see <see cref="RelaySink"/>) and served on the worker's Prometheus endpoint; a
/// run's series end with its attempt.
/// </summary>
public sealed class TrainingGauges
{
    public const string LinePrefix = "@@hc-metrics ";
    static readonly string[] Instruments =
    [
        "hc.train.loss", "hc.train.lr", "hc.train.grad_norm", "hc.train.tokens_per_second", "hc.train.step_seconds", "hc.train.mfu",
        "hc.train.tokens", "hc.train.step", "hc.device.memory_bytes", "hc.val.loss", "hc.moe.load_balancing_loss", "hc.moe.router_z_loss",
        "hc.moe.expert_load", "hc.connection_stat",
    ];

    sealed record RunSeries(KeyValuePair<string, object?>[] Labels, ConcurrentDictionary<(string G, string Key), (double V, KeyValuePair<string, object?>[] Tags)> Values);
    readonly ConcurrentDictionary<long, RunSeries> runs = new();

    public TrainingGauges(Meter? meter = null)
    {
        meter ??= HcInstruments.Meter;
        foreach (var name in Instruments) meter.CreateObservableGauge(name, () => Observe(name));
    }

    IEnumerable<Measurement<double>> Observe(string instrument) =>
        runs.Values.SelectMany(r => r.Values.Where(v => v.Key.G == instrument).Select(v => new Measurement<double>(v.Value.V, v.Value.Tags)));

    public void Start(long runId, AttemptStart start) => runs[runId] = new RunSeries(
    [
        new("run_id", runId.ToString(CultureInfo.InvariantCulture)), new("run_name", start.Name), new("preset", start.Preset),
        new("architecture", start.Architecture), new("connection", start.Connection), new("rate", start.Rate.ToString(CultureInfo.InvariantCulture)),
    ], new());

    public void End(long runId) => runs.TryRemove(runId, out _);

    public void Apply(long runId, IEnumerable<TrainingSample> samples)
    {
        if (!runs.TryGetValue(runId, out var run)) return;
        foreach (var s in samples)
        {
            if (!Instruments.Contains(s.G) || !double.IsFinite(s.V)) continue;
            var extra = s.T ?? [];
            var key = string.Join(",", extra.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}={e.Value}"));
            run.Values[(s.G, key)] = (s.V, [.. run.Labels, .. extra.Select(e => new KeyValuePair<string, object?>(e.Key, e.Value))]);
        }
    }

    /// <summary>A stdout line handler for the run's child: consumes relay lines, lets the rest through.</summary>
    public Func<string, bool> Relay(long runId) => line =>
    {
        if (!line.StartsWith(LinePrefix, StringComparison.Ordinal)) return false;
        try { Apply(runId, JsonSerializer.Deserialize<List<TrainingSample>>(line.AsSpan(LinePrefix.Length)) ?? []); }
        catch (JsonException) { }
        return true;
    };
}

/// <summary>The training child's side of the relay: each step's and validation's metrics as one stdout line.</summary>
public sealed class RelaySink : IMetricsSink
{
    public void OnStep(StepMetrics m)
    {
        var samples = new List<TrainingSample>
        {
            new("hc.train.loss", m.Loss), new("hc.train.lr", m.Lr), new("hc.train.grad_norm", m.GradNorm),
            new("hc.train.tokens_per_second", m.TokensPerSecond), new("hc.train.step_seconds", m.StepSeconds), new("hc.train.mfu", m.Mfu),
            new("hc.train.tokens", m.Tokens), new("hc.train.step", m.Step),
            new("hc.device.memory_bytes", Environment.WorkingSet),
        };
        if (m.LoadBalancingLoss is { } lb) samples.Add(new("hc.moe.load_balancing_loss", lb));
        if (m.RouterZLoss is { } z) samples.Add(new("hc.moe.router_z_loss", z));
        if (m.ExpertTokens is { } experts)
            for (var l = 0; l < experts.Count; l++)
            {
                var total = Math.Max(1, experts[l].Sum());
                for (var e = 0; e < experts[l].Length; e++)
                    samples.Add(new("hc.moe.expert_load", (double)experts[l][e] / total, new() { ["layer"] = l.ToString(CultureInfo.InvariantCulture), ["expert"] = e.ToString(CultureInfo.InvariantCulture) }));
            }
        if (m.Hc is { } hc) foreach (var (stat, value) in hc) samples.Add(new("hc.connection_stat", value, new() { ["stat"] = stat }));
        Write(samples);
    }

    public void OnValidation(ValidationMetrics m) => Write([new("hc.val.loss", m.Loss, new() { ["dataset"] = m.Dataset })]);
    public void OnCheckpoint(CheckpointRecord c) { }

    static void Write(List<TrainingSample> samples)
    {
        var line = TrainingGauges.LinePrefix + JsonSerializer.Serialize(samples.Where(s => double.IsFinite(s.V)));
        lock (Console.Out) Console.Out.WriteLine(line);
    }
}
