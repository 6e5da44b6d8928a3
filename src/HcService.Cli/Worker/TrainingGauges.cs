using HcService.Store.Runs;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using HcService.Contract.Metrics;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Jobs;

namespace HcService.Cli.Worker;

/// <summary>One training measurement as the training child relays it to its worker: the instrument
/// (<see cref="MetricDefinition.Instrument"/>), the value, and labels besides the run's.
/// (The wire names stay G, V and T, so that a worker and a training process of adjacent versions still understand each
/// other during an in-place upgrade.)</summary>
public sealed record RelayedSample(
    [property: System.Text.Json.Serialization.JsonPropertyName("G")] string Instrument,
    [property: System.Text.Json.Serialization.JsonPropertyName("V")] double Value,
    [property: System.Text.Json.Serialization.JsonPropertyName("T")] Dictionary<string, string>? Labels = null);

/// <summary>
/// The training metrics of the runs a process knows (docs/design.md section 7): gauges labelled with the run's id, name,
/// preset, architecture, connection and rate. In a worker they are fed by its training child through stdout (one
/// "@@hc-metrics [...]" line per step, see <see cref="RelaySink"/>) and served on the worker's Prometheus endpoint; a
/// run's series end with its attempt.
/// </summary>
public sealed class TrainingGauges
{
    public const string LinePrefix = "@@hc-metrics ";

    sealed record RunSeries(KeyValuePair<string, object?>[] Labels, ConcurrentDictionary<(string G, string Key), (double V, KeyValuePair<string, object?>[] Tags)> Values);
    readonly ConcurrentDictionary<long, RunSeries> runs = new();

    public TrainingGauges(Meter? meter = null)
    {
        meter ??= HcInstruments.Meter;
        foreach (var d in MetricRegistry.All.Where(d => d.Instrument is not null))
            meter.CreateObservableGauge(d.Instrument!, () => Observe(d.Instrument!), description: d.Description);
    }

    IEnumerable<Measurement<double>> Observe(string instrument) =>
        runs.Values.SelectMany(r => r.Values.Where(v => v.Key.G == instrument).Select(v => new Measurement<double>(v.Value.V, v.Value.Tags)));

    public void Start(long runId, AttemptStart start) => runs[runId] = new RunSeries(
    [
        new("run_id", runId.ToString(CultureInfo.InvariantCulture)), new("run_name", start.Name), new("preset", start.Preset),
        new("architecture", start.Architecture), new("connection", start.Connection), new("rate", start.Rate.ToString(CultureInfo.InvariantCulture)),
    ], new());

    public void End(long runId) => runs.TryRemove(runId, out _);

    public void Apply(long runId, IEnumerable<RelayedSample> samples)
    {
        if (!runs.TryGetValue(runId, out var run)) return;
        foreach (var s in samples)
        {
            if (!MetricRegistry.Instruments.Contains(s.Instrument) || !double.IsFinite(s.Value)) continue;
            var extra = s.Labels ?? [];
            var key = string.Join(",", extra.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}={e.Value}"));
            run.Values[(s.Instrument, key)] = (s.Value, [.. run.Labels, .. extra.Select(e => new KeyValuePair<string, object?>(e.Key, e.Value))]);
        }
    }

    /// <summary>A stdout line handler for the run's child: consumes relay lines, lets the rest through.</summary>
    public Func<string, bool> Relay(long runId) => line =>
    {
        if (!line.StartsWith(LinePrefix, StringComparison.Ordinal)) return false;
        try { Apply(runId, JsonSerializer.Deserialize<List<RelayedSample>>(line.AsSpan(LinePrefix.Length)) ?? []); }
        catch (JsonException) { }
        return true;
    };
}

/// <summary>The training child's side of the relay: each step's and validation's metrics as one stdout line.</summary>
public sealed class RelaySink : IMetricsSink
{
    public void OnStep(StepMetrics m)
    {
        static RelayedSample Of(MetricDefinition d, double value, Dictionary<string, string>? labels = null) => new(d.Instrument!, value, labels);
        var samples = new List<RelayedSample>
        {
            Of(MetricRegistry.TrainLoss, m.Loss), Of(MetricRegistry.Lr, m.Lr), Of(MetricRegistry.GradNorm, m.GradNorm),
            Of(MetricRegistry.TokensPerSecond, m.TokensPerSecond), Of(MetricRegistry.StepSeconds, m.StepSeconds), Of(MetricRegistry.Mfu, m.Mfu),
            Of(MetricRegistry.Tokens, m.Tokens), Of(MetricRegistry.Step, m.Step),
            Of(MetricRegistry.ProcessMemory, Environment.WorkingSet),
        };
        if (m.LoadBalancingLoss is { } lb) samples.Add(Of(MetricRegistry.LoadBalancingLoss, lb));
        if (m.RouterZLoss is { } z) samples.Add(Of(MetricRegistry.RouterZLoss, z));
        if (m.ExpertTokens is { } experts)
            for (var l = 0; l < experts.Count; l++)
            {
                var total = Math.Max(1, experts[l].Sum());
                for (var e = 0; e < experts[l].Length; e++)
                    samples.Add(Of(MetricRegistry.ExpertLoad, (double)experts[l][e] / total, new() { ["layer"] = l.ToString(CultureInfo.InvariantCulture), ["expert"] = e.ToString(CultureInfo.InvariantCulture) }));
            }
        if (m.Hc is { } hc)
            foreach (var (stat, value) in hc)
                samples.Add(stat == MetricRegistry.CompositeGain.Name ? Of(MetricRegistry.CompositeGain, value) : Of(MetricRegistry.ConnectionStatistic, value, new() { ["stat"] = stat }));
        Write(samples);
    }

    public void OnValidation(ValidationMetrics m) =>
        Write([new(MetricRegistry.ValidationLoss.Instrument!, m.Loss, new() { ["dataset"] = m.Dataset })]);
    public void OnCheckpoint(CheckpointRecord c) { }

    static void Write(List<RelayedSample> samples)
    {
        var line = TrainingGauges.LinePrefix + JsonSerializer.Serialize(samples.Where(s => double.IsFinite(s.Value)));
        lock (Console.Out) Console.Out.WriteLine(line);
    }
}
