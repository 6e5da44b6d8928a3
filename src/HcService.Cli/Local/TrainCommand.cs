using System.CommandLine;
using System.Globalization;
using HcService.Contract.Counting;
using HcService.Core.Counting;
using HcService.Contract.Jobs;
using HcService.Core.Training;
using HcService.Cli.Terminal;

namespace HcService.Cli.Local;

/// <summary>`hc train`: run a job spec standalone (no service, no database). Resumes from the out folder's latest
/// verified checkpoint; Ctrl+C checkpoints and stops. Exit codes: <see cref="ExitCodes"/> (0 succeeded, 1 failed, 2 invalid input,
/// 5 stopped after --stop-after-step, 130 interrupted).</summary>
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
        var stopAfter = new Option<long?>("--stop-after-step") { Description = "Checkpoint and stop after this step (exit code 5); rerun the same command to resume" };
        var every = new Option<int>("--print-every") { Description = "When stdout is not a terminal: print a progress line every N steps (a terminal gets a live bar)", DefaultValueFactory = _ => 10 };

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
            RunResult result;
            using (var view = new RunProgressView(plan.Name, plan.Training.Steps, plan.Training.Steps * plan.Training.BatchTokens, r.GetValue(every)))
            {
                var run = new TrainingRun(job, plan, new RunOptions(DataRootOption.Resolve(r.GetValue(root)), outDir, kind, peakFlops) { StopAfterStep = r.GetValue(stopAfter) },
                    [jsonl, new ViewSink(view)], view.Line);
                result = run.Run(cts.Token);
            }
            Console.WriteLine($"{result.Outcome.ToString().ToLowerInvariant()} at step {result.Step} ({result.Tokens:N0} tokens){(result.Reason is { } why ? ": " + why : "")}");
            return result.Outcome switch
            {
                RunOutcome.Succeeded => ExitCodes.Ok,
                RunOutcome.Stopped when cts.IsCancellationRequested => ExitCodes.Interrupted,
                RunOutcome.Stopped => ExitCodes.StoppedAsAsked,
                _ => ExitCodes.RunFailed,
            };
        });
        return cmd;
    }

    /// <summary>The training loop's events on the progress view: steps (lr, grad norm and MFU on plain lines), validations,
    /// checkpoints and phases.</summary>
    sealed class ViewSink(RunProgressView view) : IMetricsSink
    {
        static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

        public void OnStep(StepMetrics m) =>
            view.Step(m.Step, m.Tokens, m.Loss, string.Create(Ci, $"lr {m.Lr:E2} | grad {m.GradNorm:F3} | MFU {m.Mfu * 100:F1}%"));

        public void OnValidation(ValidationMetrics m)
        {
            if (m.Accuracy is { } a) view.Accuracy(m.Dataset, m.Step, m.Loss, a.Top1, a.Top5, a.Images);
            else view.Validation(m.Dataset, m.Step, m.Loss, m.Perplexity, m.EvalTokens);
        }

        public void OnCheckpoint(CheckpointRecord c) =>
            view.Line(string.Create(Ci, $"  checkpoint {Path.GetFileName(c.Path)} ({c.Bytes / 1e6:F1} MB, sha256 {c.Sha256[..12]})"));

        public void OnPhase(string message) => view.Line($"  {message}");
    }
}
