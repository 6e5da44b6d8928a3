using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Contract.Jobs;
using HcService.Core.Model;
using HcService.Core.Optim;
using static TorchSharp.torch;

namespace HcService.Cli.Bench;

/// <summary>
/// `hc bench memory activations`: the activation memory of one training step of the bench model (the `hc bench step`
/// shape) per connection and training.recompute mode, measured. Each row runs in a fresh process (`hc bench
/// activation-probe`, hidden) whose allocator returns every freed tensor to the system at once (glibc: allocations
/// from 64 KiB are their own mappings, the heap is trimmed), so that resident memory is live memory. After a warm-up
/// step (gradients, AdamW state, kernels' workspaces allocated) the probe reads the resident memory, runs the forward
/// and the loss, and reads it again: the difference is what the forward keeps for backward (activations). It then runs
/// the backward and reads the peak (VmHWM, reset before the forward): the step's peak above the same baseline.
/// </summary>
static class ActivationBench
{
    sealed record Probe(long ForwardBytes, long PeakBytes, long EstimateBytes);

    static readonly (string Label, Architecture Arch, ConnectionConfig Conn)[] Variants =
    [
        ("residual", Architecture.Dense, ConnectionConfig.Residual),
        ("shc-x4", Architecture.Dense, ConnectionConfig.StaticHc(4)),
        ("dhc-x4", Architecture.Dense, ConnectionConfig.DynamicHc(4)),
        ("dhc-x2", Architecture.Dense, ConnectionConfig.DynamicHc(2)),
        ("dfc-m4", Architecture.Dense, ConnectionConfig.Frac(4)),
        ("mhc-x4", Architecture.Dense, ConnectionConfig.Mhc(4)),
        ("mhc-lite-x4", Architecture.Dense, ConnectionConfig.MhcLite(4)),
    ];

    /// <summary>glibc settings that make resident memory track live memory (the probes only; training keeps `./hc`'s).</summary>
    const string ExactAllocator = "glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=0";

    public static IEnumerable<Command> Create()
    {
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 4, Description = "Transformer blocks" };
        var dModel = new Option<int>("--d-model") { DefaultValueFactory = _ => 256, Description = "Width d" };
        var seq = new Option<int>("--seq-len") { DefaultValueFactory = _ => 256, Description = "Sequence length" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 8, Description = "Sequences per step" };
        var modes = new Option<string[]>("--recompute") { DefaultValueFactory = _ => ["none", "hc", "block"], AllowMultipleArgumentsPerToken = true, Description = "training.recompute modes to measure" };
        var variants = new Option<string[]>("--variants")
        {
            Description = "Connections (default all): " + string.Join(", ", Variants.Select(v => v.Label)), AllowMultipleArgumentsPerToken = true,
        };
        var output = new Option<string?>("--out") { Description = "Append the result as a Markdown section to this file (e.g. BENCHMARKS.md)" };
        var command = new Command("activations", "Activation memory of one training step per connection and recompute mode, measured, as ratios to residual")
        {
            layers, dModel, seq, batch, modes, variants, output,
        };
        command.SetAction(r =>
        {
            var chosen = r.GetValue(variants) is { Length: > 0 } names
                ? names.Select(n => Variants.FirstOrDefault(v => v.Label == n) is { Label: not null } v ? v
                    : throw new ConfigException([new("--variants", n, "one of " + string.Join(", ", Variants.Select(x => x.Label)))])).ToArray()
                : Variants;
            var recompute = r.GetValue(modes)!.Select(m => ParseMode(m, "--recompute")).ToArray();
            var shape = new[] { r.GetValue(layers), r.GetValue(dModel), r.GetValue(seq), r.GetValue(batch) };
            var rows = new List<(string Label, RecomputeMode Mode, Probe Probe)>();
            foreach (var v in chosen)
                foreach (var m in recompute)
                {
                    var probe = RunProbe(v.Label, m, shape);
                    rows.Add((v.Label, m, probe));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{v.Label,-12} recompute {Names(m),-6}: activations {Mib(probe.ForwardBytes),8:F1} MiB, step peak {Mib(probe.PeakBytes),8:F1} MiB, estimate {Mib(probe.EstimateBytes),8:F1} MiB"));
                }
            var report = Report(rows, shape, "hc " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            Console.WriteLine(report);
            if (r.GetValue(output) is { } path) File.AppendAllText(path, "\n" + report);
            return 0;
        });

        var label = new Option<string>("--variant") { Required = true };
        var mode = new Option<string>("--mode") { Required = true };
        var dims = new Option<int[]>("--shape") { Required = true, AllowMultipleArgumentsPerToken = true };
        var probe = new Command("activation-probe", "(internal) One row of `hc bench memory activations`, in its own process") { Hidden = true };
        foreach (var o in new Option[] { label, mode, dims }) probe.Add(o);
        probe.SetAction(r =>
        {
            var v = Variants.First(x => x.Label == r.GetValue(label));
            Console.WriteLine(JsonSerializer.Serialize(Measure(v.Arch, v.Conn, ParseMode(r.GetValue(mode)!, "--mode"), r.GetValue(dims)!)));
            return 0;
        });
        return [command, probe];
    }

    static RecomputeMode ParseMode(string text, string field) => text switch
    {
        "none" => RecomputeMode.None,
        "hc" => RecomputeMode.Hc,
        "block" => RecomputeMode.Block,
        _ => throw new ConfigException([new(field, text, "none, hc or block")]),
    };

    static string Names(RecomputeMode m) => m.ToString().ToLowerInvariant();
    static double Mib(long bytes) => bytes / (double)(1 << 20);

    /// <summary>The bench model of `hc bench step` at this shape (layers, d, seq, batch).</summary>
    internal static ModelConfig Model(int layers, int d, int seq, Architecture arch, ConnectionConfig connection) => Presets.Tiny with
    {
        Name = "bench", Layers = layers, DModel = d, Heads = Math.Max(1, d / 64), MlpHidden = (8 * d / 3 + 15) / 16 * 16,
        MaxSeqLen = seq, Vocab = 256, EmbeddingSize = 256, Architecture = arch, Connection = connection,
        Moe = new() { Experts = 8, TopK = 2, ExpertHidden = (8 * d / 3 + 15) / 16 * 16 / 2 },
    };

    static Probe RunProbe(string label, RecomputeMode mode, int[] shape) =>
        MemoryBench.ProbeProcess<Probe>(["bench", "activation-probe", "--variant", label, "--mode", Names(mode), "--shape",
            .. shape.Select(s => s.ToString(CultureInfo.InvariantCulture))], $"activation-probe {label} {mode}",
            new Dictionary<string, string> { ["GLIBC_TUNABLES"] = ExactAllocator });

    static Probe Measure(Architecture arch, ConnectionConfig connection, RecomputeMode mode, int[] shape)
    {
        var (layers, d, seq, batch) = (shape[0], shape[1], shape[2], shape[3]);
        var config = Model(layers, d, seq, arch, connection);
        manual_seed(1);
        using var model = new LanguageModel(config) { Recompute = mode };
        model.train();
        using var optimizer = Optimizers.AdamW(model, 1e-3, 0.1);
        var generator = new Generator(7);
        using var tokens = randint(0, config.Vocab, [batch, seq + 1], generator: generator, dtype: ScalarType.Int64);
        using var inputs = tokens.narrow(1, 0, seq);
        using var targets = tokens.narrow(1, 1, seq);
        HcService.Core.Training.TrainStep.Run(model, optimizer, inputs, targets, 1.0);   // warm-up: gradients, AdamW state
        optimizer.zero_grad();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        File.WriteAllText("/proc/self/clear_refs", "5");   // resets VmHWM to the current resident size
        var baseline = Status("VmRSS");
        long forward;
        using (var scope = NewDisposeScope())
        {
            var loss = model.Loss(model.Forward(inputs), targets).Total;
            forward = Status("VmRSS") - baseline;
            loss.backward();
            HcService.Core.Connections.Recompute.Release();
        }
        var peak = Status("VmHWM") - baseline;
        var estimate = ModelCounter.Memory(config, batch, bf16: false, eagerCpu: true, recompute: mode).Activations;
        return new Probe(forward, peak, estimate);
    }

    static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(':', 2)[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    static string Report(List<(string Label, RecomputeMode Mode, Probe Probe)> rows, int[] shape, string command)
    {
        var ci = CultureInfo.InvariantCulture;
        var baseline = rows.FirstOrDefault(r => r.Label == "residual" && r.Mode == RecomputeMode.None).Probe;
        var sb = new StringBuilder();
        sb.AppendLine($"### Activation memory by connection and recompute mode ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        sb.AppendLine();
        sb.AppendLine($"- command: `{command}`");
        sb.AppendLine($"- machine: {BenchCommand.Machine()}");
        sb.AppendLine($"- model: the `hc bench step` model, L={shape[0]}, d={shape[1]}, seq={shape[2]}, batch={shape[3]}, vocab 256, fp32");
        sb.AppendLine($"- protocol: one fresh process per row with GLIBC_TUNABLES={ExactAllocator} (freed tensors leave the resident set at once); " +
                      "after one warm-up training step, activations = resident memory after the forward and loss minus before; step peak = VmHWM during " +
                      "forward and backward minus the same baseline (gradients are already allocated); estimate = the eager-CPU activation estimate " +
                      "(`ModelCounter.Memory`, what a submission is checked against)");
        sb.AppendLine();
        sb.AppendLine("| connection | recompute | activations MiB | / residual (none) | step peak MiB | / residual (none) | estimate MiB | estimate / measured |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var (label, mode, p) in rows)
        {
            string Ratio(long value, long? of) => of is > 0 ? (value / (double)of.Value).ToString("F3", ci) : "-";
            sb.AppendLine(ci, $"| {label} | {Names(mode)} | {Mib(p.ForwardBytes):F1} | {Ratio(p.ForwardBytes, baseline?.ForwardBytes)} | {Mib(p.PeakBytes):F1} | {Ratio(p.PeakBytes, baseline?.PeakBytes)} | {Mib(p.EstimateBytes):F1} | {p.EstimateBytes / (double)p.ForwardBytes:F2} |");
        }
        return sb.ToString();
    }
}
