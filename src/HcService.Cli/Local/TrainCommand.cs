using System.CommandLine;
using System.Globalization;
using HcService.Contract.Counting;
using HcService.Core.Counting;
using HcService.Contract.Jobs;
using HcService.Core.Training;

namespace HcService.Cli.Local;

/// <summary>`hc train`: run a job spec standalone (no service, no database). Resumes from the out folder's latest
/// verified checkpoint; Ctrl+C checkpoints and stops. Exit code 0 succeeded, 1 failed, 2 invalid input, 130 cancelled.</summary>
static class TrainCommand
{
    public static Command Create()
    {
        var spec = new Option<string>("--spec") { Description = "Job spec JSON file (docs/design.md section 4)", Required = true };
        var root = DataRootOption.Create();
        var output = new Option<string>("--out") { Description = "Run folder: metrics.jsonl and checkpoints/", Required = true };
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        device.AcceptOnlyFromAmong(DeviceQueues.Cpu, DeviceQueues.Cuda);
        var peak = new Option<double?>("--peak-tflops") { Description = "Device peak TFLOP/s for the MFU estimate (default: measured fp32 matmul throughput on CPU, 989 = H100/H200 bf16 dense on CUDA)" };
        var stopAfter = new Option<long?>("--stop-after-step") { Description = "Checkpoint and stop after this step (exit code 130); rerun the same command to resume" };
        var every = new Option<int>("--print-every") { Description = "Print progress every N steps", DefaultValueFactory = _ => 10 };

        var cmd = new Command("train", "Train a job spec standalone: progress on the console, metrics.jsonl and checkpoints in --out");
        foreach (var o in new Option[] { spec, root, output, device, peak, stopAfter, every }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var specPath = r.GetValue(spec)!;
            if (!File.Exists(specPath)) throw new HcService.Contract.Config.ConfigException([new("--spec", specPath, "an existing JSON file")]);
            var job = JobSpec.Parse(File.ReadAllText(specPath));
            var kind = DeviceQueues.DeviceOf(r.GetValue(device)!);
            var peakFlops = r.GetValue(peak) * 1e12 ?? (kind == DeviceKind.Cuda ? DevicePeak.CudaBf16 : CpuPeak.MeasureMatmul());
            var outDir = r.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var plan = JobPlan.Resolve(job, kind);
            Console.WriteLine($"{plan.Name}: {plan.Model.Name} {plan.Model.Connection.Label} {(plan.Model.IsMoe ? "moe" : "dense")}, " +
                              $"{plan.Training.Steps} steps x {plan.Training.BatchTokens} tokens, lr {plan.Training.Lr}, {plan.Training.Precision}, out {Path.GetFullPath(outDir)}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"MFU is measured against {peakFlops / 1e9:F0} GFLOP/s{(r.GetValue(peak) is null && kind == DeviceKind.Cpu ? " (this CPU's fp32 matmul throughput, measured now)" : "")}"));

            using var cts = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); Console.Error.WriteLine("cancelling: checkpointing, then stopping"); };
            using var jsonl = new JsonlMetricsSink(Path.Combine(outDir, "metrics.jsonl"));
            var progress = new ConsoleProgress(plan.Training.Steps, r.GetValue(every));
            var run = new TrainingRun(job, plan, new RunOptions(DataRootOption.Resolve(r.GetValue(root)), outDir, kind, peakFlops) { StopAfterStep = r.GetValue(stopAfter) }, [jsonl, progress],
                msg => Console.WriteLine(msg));
            var result = run.Run(cts.Token);
            Console.WriteLine($"{result.Outcome.ToString().ToLowerInvariant()} at step {result.Step} ({result.Tokens:N0} tokens){(result.Reason is { } why ? ": " + why : "")}");
            return result.Outcome switch { RunOutcome.Succeeded => 0, RunOutcome.Stopped => 130, _ => 1 };
        });
        return cmd;
    }

    /// <summary>Progress lines: step, tokens, loss, lr, tokens/s, MFU, ETA; validation and checkpoints as they happen.</summary>
    sealed class ConsoleProgress(long steps, int every) : IMetricsSink
    {
        readonly System.Diagnostics.Stopwatch clock = System.Diagnostics.Stopwatch.StartNew();
        long firstStep = -1;
        static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

        public void OnStep(StepMetrics m)
        {
            if (firstStep < 0) { firstStep = m.Step - 1; clock.Restart(); }
            if (m.Step % every != 0 && m.Step != steps && m.Step != firstStep + 1) return;
            var perStep = clock.Elapsed.TotalSeconds / Math.Max(1, m.Step - firstStep);
            var eta = TimeSpan.FromSeconds(perStep * (steps - m.Step));
            Console.WriteLine(string.Create(Ci, $"step {m.Step}/{steps} | tokens {m.Tokens:N0} | loss {m.Loss:F4} | lr {m.Lr:E2} | grad {m.GradNorm:F3} | {m.TokensPerSecond:F0} tok/s | MFU {m.Mfu * 100:F1}% | ETA {eta:hh\\:mm\\:ss}"));
        }

        public void OnValidation(ValidationMetrics m) =>
            Console.WriteLine(string.Create(Ci, $"  validation {m.Dataset}: loss {m.Loss:F4}, ppl {m.Perplexity:F2} ({m.EvalTokens:N0} tokens) at step {m.Step}"));

        public void OnCheckpoint(CheckpointRecord c) =>
            Console.WriteLine(string.Create(Ci, $"  checkpoint {Path.GetFileName(c.Path)} ({c.Bytes / 1e6:F1} MB, sha256 {c.Sha256[..12]})"));
    }
}
