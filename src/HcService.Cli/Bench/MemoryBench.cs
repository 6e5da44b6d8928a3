using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Core.Counting;
using HcService.Contract.Jobs;
using HcService.Core.Model;
using HcService.Core.Training;
using static TorchSharp.torch;

namespace HcService.Cli.Bench;

/// <summary>
/// `hc bench memory`: the service's training-memory estimate (<see cref="ModelCounter.Memory"/>, what a submission is
/// checked against) next to the measured peak, for each preset, connection and micro-batch of a grid. Each point runs
/// in a fresh process (`hc bench memory-probe`, hidden), which builds the model and AdamW exactly as a run does and
/// trains two steps on random tokens; the measurement is the rise of its peak resident memory (VmHWM) over its resident
/// memory before the model existed (the runtime and libtorch). The estimate must never be below the measurement.
/// </summary>
static class MemoryBench
{
    sealed record Point(string Preset, string Architecture, string Connection, int Rate, int MicroBatch);
    sealed record Probe(long BaselineBytes, long PeakBytes, long EstimateBytes, int SeqLen, double Seconds);

    static readonly (string Label, string Arch, string Conn, int Rate)[] Connections =
    [
        ("residual", "dense", "residual", 1), ("post-norm", "dense", "post-norm", 1), ("shc-x4", "dense", "static-hc", 4),
        ("dhc-x4", "dense", "dynamic-hc", 4), ("dhc-x8", "dense", "dynamic-hc", 8), ("moe-dhc-x4", "moe", "dynamic-hc", 4),
    ];

    public static IEnumerable<Command> Create()
    {
        var tinyBatches = new Option<int[]>("--tiny-micro-batches") { DefaultValueFactory = _ => [64, 256, 1024], AllowMultipleArgumentsPerToken = true, Description = "Micro-batches for the tiny preset" };
        var smallBatches = new Option<int[]>("--small-micro-batches") { DefaultValueFactory = _ => [8, 24, 48], AllowMultipleArgumentsPerToken = true, Description = "Micro-batches for the small preset" };
        var output = new Option<string?>("--out") { Description = "Append the result as a Markdown section to this file (e.g. BENCHMARKS.md)" };
        var memory = new Command("memory", "Training-memory estimate vs measured peak per preset, connection and micro-batch (CPU, fp32)") { tinyBatches, smallBatches, output };
        memory.SetAction(r =>
        {
            var points = r.GetValue(tinyBatches)!.SelectMany(b => Connections.Select(c => new Point("tiny", c.Arch, c.Conn, c.Rate, b)))
                .Concat(r.GetValue(smallBatches)!.SelectMany(b => Connections.Select(c => new Point("small", c.Arch, c.Conn, c.Rate, b)))).ToList();
            var results = new List<(Point Point, string Label, Probe Probe)>();
            foreach (var p in points)
            {
                var label = Connections.First(c => c.Arch == p.Architecture && c.Conn == p.Connection && c.Rate == p.Rate).Label;
                var probe = RunProbe(p);
                results.Add((p, label, probe));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{p.Preset,-6} {label,-11} micro-batch {p.MicroBatch,5}: measured {Gib(probe.PeakBytes - probe.BaselineBytes),7:F3} GiB, estimate {Gib(probe.EstimateBytes),7:F3} GiB ({probe.EstimateBytes / (double)(probe.PeakBytes - probe.BaselineBytes):F2}x)"));
            }
            var report = Report(results, "hc " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            Console.WriteLine(report);
            if (r.GetValue(output) is { } path) File.AppendAllText(path, "\n" + report);
            return results.All(x => x.Probe.EstimateBytes >= x.Probe.PeakBytes - x.Probe.BaselineBytes) ? 0 : 1;
        });

        var preset = new Option<string>("--preset") { Required = true };
        var arch = new Option<string>("--architecture") { Required = true };
        var conn = new Option<string>("--connection") { Required = true };
        var rate = new Option<int>("--rate") { DefaultValueFactory = _ => 1 };
        var micro = new Option<int>("--micro-batch") { Required = true };
        var probe = new Command("memory-probe", "(internal) One point of `hc bench memory`, in its own process") { Hidden = true };
        foreach (var o in new Option[] { preset, arch, conn, rate, micro }) probe.Add(o);
        probe.SetAction(r =>
        {
            var result = Measure(new Point(r.GetValue(preset)!, r.GetValue(arch)!, r.GetValue(conn)!, r.GetValue(rate), r.GetValue(micro)));
            Console.WriteLine(JsonSerializer.Serialize(result));
            return 0;
        });
        return [memory, probe];
    }

    static double Gib(long bytes) => bytes / (double)(1L << 30);

    static Probe RunProbe(Point p) =>
        ProbeProcess<Probe>(["bench", "memory-probe", "--preset", p.Preset, "--architecture", p.Architecture, "--connection", p.Connection,
            "--rate", p.Rate.ToString(CultureInfo.InvariantCulture), "--micro-batch", p.MicroBatch.ToString(CultureInfo.InvariantCulture)], $"memory-probe {p}");

    /// <summary>Runs `hc` with <paramref name="arguments"/> in a fresh process (a probe: one measurement per process) and
    /// reads its last stdout line as JSON.</summary>
    internal static T ProbeProcess<T>(IEnumerable<string> arguments, string what, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = HcService.Cli.Processes.ChildRunner.StartInfo();
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{what} exited with {process.ExitCode}: {stderr.Result}");
        return JsonSerializer.Deserialize<T>(stdout.Trim().Split('\n')[^1])!;
    }

    /// <summary>In this process: the plan a run of this shape gets, its model and optimizer, two training steps.</summary>
    static Probe Measure(Point p)
    {
        using (ones(1)) { }   // libtorch loaded and initialised: part of the baseline, not of the run
        var baseline = Status("VmRSS");
        var spec = JobSpec.Parse($$"""
            { "model": { "preset": "{{p.Preset}}" }, "architecture": "{{p.Architecture}}", "connection": { "type": "{{p.Connection}}", "rate": {{p.Rate}} },
              "training": { "tokenBudget": 1000000000, "microBatch": {{p.MicroBatch}}, "batchTokens": {{(long)p.MicroBatch * Presets.All[p.Preset].MaxSeqLen}} } }
            """);
        var plan = JobPlan.Resolve(spec, DeviceKind.Cpu);
        var t = plan.Training;
        var estimate = ModelCounter.Memory(plan.Model with { MaxSeqLen = t.SeqLen }, t.MicroBatch, bf16: false, eagerCpu: true).Total;
        var clock = Stopwatch.StartNew();
        manual_seed(1);
        using var model = new LanguageModel(plan.Model);
        model.train();
        using var optimizer = HcService.Core.Optim.Optimizers.AdamW(model, t.Lr, t.WeightDecay);
        var generator = new TorchSharp.torch.Generator(7);
        for (var step = 0; step < 2; step++)
        {
            using var scope = NewDisposeScope();
            var tokens = randint(0, plan.Model.Vocab, [t.MicroBatch, t.SeqLen + 1], generator: generator, dtype: ScalarType.Int64);
            TrainStep.Run(model, optimizer, tokens.narrow(1, 0, t.SeqLen), tokens.narrow(1, 1, t.SeqLen), t.GradClip);
        }
        return new Probe(baseline, Status("VmHWM"), estimate, t.SeqLen, clock.Elapsed.TotalSeconds);
    }

    /// <summary>A /proc/self/status field in bytes (VmRSS: resident now; VmHWM: the peak resident).</summary>
    static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(':', 2)[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    static string Report(List<(Point Point, string Label, Probe Probe)> results, string command)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"### Training memory: estimate vs measured peak ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        sb.AppendLine();
        sb.AppendLine($"- command: `{command}`");
        sb.AppendLine($"- machine: {BenchCommand.Machine()}");
        sb.AppendLine(BenchCommand.Allocator());
        sb.AppendLine("- protocol: one fresh process per row; model and AdamW built as a run builds them, two fp32 training steps on random tokens; " +
                      "measured = peak resident memory (VmHWM) minus resident memory before the model (runtime and libtorch); estimate = what a submission is checked against");
        sb.AppendLine();
        sb.AppendLine("| preset | connection | micro-batch x seq | measured GiB | estimate GiB | estimate / measured | step s |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var (p, label, r) in results)
        {
            var measured = r.PeakBytes - r.BaselineBytes;
            sb.AppendLine(ci, $"| {p.Preset} | {label} | {p.MicroBatch} x {r.SeqLen} | {Gib(measured):F3} | {Gib(r.EstimateBytes):F3} | {r.EstimateBytes / (double)measured:F2}{(r.EstimateBytes < measured ? " **(below)**" : "")} | {r.Seconds / 2:F1} |");
        }
        var ratios = results.Select(x => x.Probe.EstimateBytes / (double)(x.Probe.PeakBytes - x.Probe.BaselineBytes)).ToList();
        sb.AppendLine();
        sb.AppendLine(ci, $"Estimate / measured: min {ratios.Min():F2}, median {ratios.Order().ElementAt(ratios.Count / 2):F2}, max {ratios.Max():F2} over {ratios.Count} rows; " +
                          $"{(ratios.All(r => r >= 1) ? "the estimate is never below the measurement" : $"{ratios.Count(r => r < 1)} rows below the measurement")}.");
        return sb.ToString();
    }
}
