using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using HcService.Contract.Config;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Cli.Bench;

/// <summary>
/// `hc bench step`: forward+backward step time of each connection variant, measured in ONE process as ratios to the
/// residual baseline. The default shape is where the transformer body dominates (256-symbol vocabulary, d = 256,
/// 4 layers, sequence 256, batch 8); with a 50k vocabulary the output head hides the connections' cost.
/// Variants run interleaved (round r runs every variant for a few steps) so that machine drift hits all alike;
/// the reported time is the median step.
/// </summary>
static class BenchCommand
{
    static readonly (string Name, Architecture Arch, ConnectionConfig Conn, HcService.Contract.Jobs.RecomputeMode Recompute, HcService.Core.Native.ConnectionKernels Kernels)[] AllVariants =
    [
        ("residual", Architecture.Dense, ConnectionConfig.Residual, default, default),
        ("shc-x4", Architecture.Dense, ConnectionConfig.StaticHc(4), default, default),
        ("dhc-x4", Architecture.Dense, ConnectionConfig.DynamicHc(4), default, default),
        ("dhc-x2", Architecture.Dense, ConnectionConfig.DynamicHc(2), default, default),
        ("shc-x1", Architecture.Dense, ConnectionConfig.StaticHc(1), default, default),
        ("dhc-x1", Architecture.Dense, ConnectionConfig.DynamicHc(1), default, default),
        ("dfc-m4", Architecture.Dense, ConnectionConfig.Frac(4), default, default),
        ("sfc-m4", Architecture.Dense, ConnectionConfig.Frac(4, dynamic: false), default, default),
        ("mhc-x4", Architecture.Dense, ConnectionConfig.Mhc(4), default, default),
        ("mhc-lite-x4", Architecture.Dense, ConnectionConfig.MhcLite(4), default, default),
        ("moe-residual", Architecture.Moe, ConnectionConfig.Residual, default, default),
        ("moe-dhc-x4", Architecture.Moe, ConnectionConfig.DynamicHc(4), default, default),
    ];

    public static Command Create()
    {
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 4, Description = "Transformer blocks" };
        var dModel = new Option<int>("--d-model") { DefaultValueFactory = _ => 256, Description = "Width d" };
        var seq = new Option<int>("--seq-len") { DefaultValueFactory = _ => 256, Description = "Sequence length" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 8, Description = "Sequences per step" };
        var vocab = new Option<int>("--vocab") { DefaultValueFactory = _ => 256, Description = "Vocabulary (256 = bytes)" };
        var rounds = new Option<int>("--rounds") { DefaultValueFactory = _ => 5, Description = "Interleaved rounds" };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 3, Description = "Timed steps per variant per round" };
        var variants = new Option<string[]>("--variants")
        {
            Description = "Variants to run (default all): " + string.Join(", ", AllVariants.Select(v => v.Name)),
            AllowMultipleArgumentsPerToken = true,
        };
        var output = new Option<string?>("--out") { Description = "Append the result as a Markdown section to this file (e.g. BENCHMARKS.md)" };
        var recompute = new Option<string[]>("--recompute")
        {
            DefaultValueFactory = _ => ["none"], AllowMultipleArgumentsPerToken = true,
            Description = "training.recompute modes to run each variant with (none, hc, block); a row per variant and mode",
        };

        var kernels = new Option<string[]>("--kernels")
        {
            DefaultValueFactory = _ => ["auto"], AllowMultipleArgumentsPerToken = true,
            Description = "Connection implementations to run each stream-mixing variant (HC, mHC, mHC-lite) with: auto (the fused CPU kernels where built) and/or tensor (tensor ops only)",
        };

        var step = new Command("step", "Forward+backward step time per connection variant, as ratios to residual");
        foreach (var o in new Option[] { layers, dModel, seq, batch, vocab, rounds, steps, variants, recompute, kernels, output }) step.Add(o);
        step.SetAction(r =>
        {
            var chosen = r.GetValue(variants) is { Length: > 0 } names
                ? names.Select(n => AllVariants.FirstOrDefault(v => v.Name == n) is { Name: not null } v ? v
                    : throw new ConfigException([new("--variants", n, "one of " + string.Join(", ", AllVariants.Select(x => x.Name)))])).ToArray()
                : AllVariants;
            var d = r.GetValue(dModel);
            var host = Presets.Tiny with
            {
                Name = "bench", Layers = r.GetValue(layers), DModel = d, Heads = Math.Max(1, d / 64), MlpHidden = (8 * d / 3 + 15) / 16 * 16,
                MaxSeqLen = r.GetValue(seq), Vocab = r.GetValue(vocab), EmbeddingSize = r.GetValue(vocab),
                Moe = new() { Experts = 8, TopK = 2, ExpertHidden = (8 * d / 3 + 15) / 16 * 16 / 2 },
            };
            var modes = r.GetValue(recompute)!.Select(m => m switch
            {
                "none" => HcService.Contract.Jobs.RecomputeMode.None,
                "hc" => HcService.Contract.Jobs.RecomputeMode.Hc,
                "block" => HcService.Contract.Jobs.RecomputeMode.Block,
                _ => throw new ConfigException([new("--recompute", m, "none, hc or block")]),
            }).ToArray();
            var impls = r.GetValue(kernels)!.Select(k => k switch
            {
                "auto" => HcService.Core.Native.ConnectionKernels.Auto,
                "tensor" => HcService.Core.Native.ConnectionKernels.Tensor,
                _ => throw new ConfigException([new("--kernels", k, "auto or tensor")]),
            }).ToArray();
            chosen = [.. chosen.SelectMany(v => modes.Where(m => !(m == HcService.Contract.Jobs.RecomputeMode.Block && v.Arch == Architecture.Moe))
                .SelectMany(m => (v.Conn.CopiesStreams ? impls : impls.Take(1)).Select(k =>
                    ($"{v.Name}{(m == HcService.Contract.Jobs.RecomputeMode.None ? "" : $" ({m.ToString().ToLowerInvariant()})")}{(impls.Length > 1 && v.Conn.CopiesStreams ? $" [{k.ToString().ToLowerInvariant()}]" : "")}",
                     v.Arch, v.Conn, m, k))))];
            var report = Run(host, chosen, r.GetValue(batch), r.GetValue(rounds), r.GetValue(steps), "hc " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            Console.WriteLine(report);
            if (r.GetValue(output) is { } path) File.AppendAllText(path, "\n" + report);
            return 0;
        });

        var bench = new Command("bench", "Benchmarks (results go to BENCHMARKS.md)");
        bench.Add(step);
        bench.Add(TrainThroughput.Create());
        bench.Add(ServiceBench.Create());
        var memory = MemoryBench.Create().ToList();
        var activations = ActivationBench.Create().ToList();
        memory[0].Add(activations[0]);   // hc bench memory activations
        foreach (var c in memory.Concat(activations.Skip(1))) bench.Add(c);
        return bench;
    }

    static string Run(ModelConfig host, (string Name, Architecture Arch, ConnectionConfig Conn, HcService.Contract.Jobs.RecomputeMode Recompute, HcService.Core.Native.ConnectionKernels Kernels)[] variants, int batch, int rounds, int steps, string command)
    {
        var setups = variants.Select(v =>
        {
            manual_seed(1);
            var model = new LanguageModel(host with { Architecture = v.Arch, Connection = v.Conn }) { Recompute = v.Recompute, ConnectionKernels = v.Kernels };
            model.train();
            return (v.Name, Model: model, Times: new List<double>(), Forward: new List<double>(), Backward: new List<double>());
        }).ToList();
        var g = new Generator(7);
        var tokens = randint(0, host.Vocab, [batch, host.MaxSeqLen + 1], generator: g, dtype: ScalarType.Int64);
        var inputs = tokens.narrow(1, 0, host.MaxSeqLen);
        var targets = tokens.narrow(1, 1, host.MaxSeqLen);

        // One forward+backward; returns (forward ms, backward ms). CPU ops are synchronous, so the split is exact.
        (double Forward, double Backward) Step(LanguageModel m)
        {
            using var scope = NewDisposeScope();
            m.zero_grad();
            var sw = Stopwatch.StartNew();
            var loss = m.Loss(m.Forward(inputs), targets).Total;
            var forward = sw.Elapsed.TotalMilliseconds;
            loss.backward();
            HcService.Core.Connections.Recompute.Release();
            return (forward, sw.Elapsed.TotalMilliseconds - forward);
        }

        foreach (var s in setups) for (var i = 0; i < 2; i++) Step(s.Model);   // warm-up: allocator, kernels, grads
        for (var round = 0; round < rounds; round++)
            foreach (var s in setups)
                for (var i = 0; i < steps; i++)
                {
                    var (f, b) = Step(s.Model);
                    s.Forward.Add(f);
                    s.Backward.Add(b);
                    s.Times.Add(f + b);
                }

        var medians = setups.ToDictionary(s => s.Name, s => Stats.Median(s.Times));
        var baseline = medians.GetValueOrDefault("residual", medians.Values.First());
        var moeBaseline = medians.GetValueOrDefault("moe-residual", double.NaN);

        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"### Step time by connection ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        sb.AppendLine();
        sb.AppendLine($"- command: `{command}`");
        sb.AppendLine($"- machine: {Machine()}");
        sb.AppendLine(Allocator());
        sb.AppendLine($"- connection kernels: {HcService.Core.Native.NativeConnections.Status}");
        sb.AppendLine($"- model: L={host.Layers}, d={host.DModel}, heads={host.Heads}, mlp={host.MlpHidden}, vocab={host.Vocab}, seq={host.MaxSeqLen}, batch={batch}; " +
                      $"MoE: {host.Moe.Experts} experts, top-{host.Moe.TopK}, expert hidden {host.Moe.ExpertHidden}; fp32, forward+backward");
        sb.AppendLine($"- protocol: 2 warm-up steps per variant, then {rounds} interleaved rounds x {steps} steps; median step time");
        sb.AppendLine();
        sb.AppendLine("| variant | median ms/step | min ms | forward ms | backward ms | tokens/s | ratio to residual | ratio to its own baseline |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var s in setups)
        {
            var med = medians[s.Name];
            var own = s.Name.StartsWith("moe") ? moeBaseline : baseline;
            sb.AppendLine(ci, $"| {s.Name} | {med:F1} | {s.Times.Min():F1} | {Stats.Median(s.Forward):F1} | {Stats.Median(s.Backward):F1} | {batch * host.MaxSeqLen / (med / 1000):F0} | {med / baseline:F3} | {(double.IsNaN(own) ? "-" : (med / own).ToString("F3", ci))} |");
        }
        sb.AppendLine();
        sb.AppendLine(ci, $"Peak RSS of the benchmark process: {System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MiB.");
        foreach (var s in setups) s.Model.Dispose();
        return sb.ToString();
    }

    internal static string Allocator() =>
        $"- allocator: GLIBC_TUNABLES={Environment.GetEnvironmentVariable("GLIBC_TUNABLES") ?? "(unset: glibc defaults)"}";

    internal static string Machine()
    {
        var cpu = "unknown CPU";
        try { cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? cpu; } catch (IOException) { }
        return $"{cpu}, {Environment.ProcessorCount} cores, torch threads {get_num_threads()}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, TorchSharp {typeof(torch).Assembly.GetName().Version}";
    }
}
