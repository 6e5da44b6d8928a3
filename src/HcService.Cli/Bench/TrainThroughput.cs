using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Core.Counting;
using HcService.Contract.Data;
using HcService.Core.Data;
using HcService.Contract.Jobs;
using HcService.Core.Model;
using HcService.Core.Optim;
using HcService.Core.Training;
using static TorchSharp.torch;
using HcService.Cli.Local;

namespace HcService.Cli.Bench;

/// <summary>
/// `hc bench train`: training throughput of whole optimizer steps as `hc train` runs them (the job plan's batch and
/// gradient accumulation, the real data sampler on the shipped byte corpus, AdamW, clipping), per preset and connection,
/// with the MFU estimate against this CPU's measured matmul throughput. Variants run interleaved in one process.
/// </summary>
static class TrainThroughput
{
    public static Command Create()
    {
        var presets = new Option<string[]>("--presets") { DefaultValueFactory = _ => ["tiny", "small"], AllowMultipleArgumentsPerToken = true, Description = "Presets to measure" };
        var rounds = new Option<int>("--rounds") { DefaultValueFactory = _ => 4, Description = "Interleaved rounds" };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 2, Description = "Timed optimizer steps per variant per round" };
        var root = DataRootOption.Create();
        var output = new Option<string?>("--out") { Description = "Append the result as a Markdown section to this file" };
        var connections = new Option<string[]>("--connections")
        {
            DefaultValueFactory = _ => ["residual", "dynamic-hc"], AllowMultipleArgumentsPerToken = true,
            Description = "Connection types, each at its default rate (4) or fractions (4): " + string.Join(", ", Names.Connections),
        };
        var cmd = new Command("train", "Training tokens/s and MFU of whole optimizer steps per preset and connection (default residual vs DHC x4)");
        foreach (var o in new Option[] { presets, connections, rounds, steps, root, output }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var report = Run(r.GetValue(presets)!, r.GetValue(connections)!, r.GetValue(rounds), r.GetValue(steps), DataRootOption.Resolve(r.GetValue(root)),
                "hc " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            Console.WriteLine(report);
            if (r.GetValue(output) is { } path) File.AppendAllText(path, "\n" + report);
            return 0;
        });
        return cmd;
    }

    sealed record Setup(string Preset, string Connection, JobPlan Plan, LanguageModel Model, TorchSharp.Modules.AdamW Optimizer, WindowSampler Sampler, List<double> Seconds);

    static string Run(string[] presetNames, string[] connectionTypes, int rounds, int steps, string dataRoot, string command)
    {
        var peak = CpuPeak.MeasureMatmul();
        var catalog = new DataCatalog(dataRoot);
        var setups = new List<Setup>();
        var datasets = new List<TokenDataset>();
        foreach (var preset in presetNames)
            foreach (var type in connectionTypes.Prepend("residual").Distinct())
            {
                var plan = JobPlan.Resolve(new JobSpec
                {
                    Model = new() { Preset = preset }, Architecture = "dense", Connection = new ConnectionSpec { Type = type },
                    Training = new() { TokenBudget = new TokenCount(1L << 40) },
                });
                var label = plan.Model.Connection.Label;
                manual_seed(1);
                var model = new LanguageModel(plan.Model);
                var data = new TokenDataset(catalog.Resolve(plan.TrainSet, "data.train"));
                datasets.Add(data);
                setups.Add(new Setup(preset, label, plan, model, Optimizers.AdamW(model, plan.Training.Lr), new WindowSampler(data, plan.Training.SeqLen, 1), []));
            }

        double Step(Setup s)
        {
            var t = s.Plan.Training;
            var sw = Stopwatch.StartNew();
            TrainStep.Run(s.Model, s.Optimizer, _ => TrainStep.NextBatch(s.Sampler, t.MicroBatch, t.SeqLen, CPU), t.Accumulation, t.GradClip);
            return sw.Elapsed.TotalSeconds;
        }

        foreach (var s in setups) { Step(s); Step(s); }
        for (var round = 0; round < rounds; round++)
            foreach (var s in setups)
                for (var i = 0; i < steps; i++) s.Seconds.Add(Step(s));

        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"### Training throughput ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        sb.AppendLine();
        sb.AppendLine($"- command: `{command}`");
        sb.AppendLine(ci, $"- machine: {BenchCommand.Machine()}; fp32 matmul throughput measured {peak / 1e9:F0} GFLOP/s (the MFU denominator)");
        sb.AppendLine(BenchCommand.Allocator());
        sb.AppendLine($"- whole optimizer steps as `hc train` runs them (job-plan batch, gradient accumulation, AdamW, clipping, byte corpus); 2 warm-up steps, {rounds} interleaved rounds x {steps} steps, median");
        sb.AppendLine();
        sb.AppendLine("| preset | connection | params | batch tokens (micro x accum) | median s/step | tokens/s | training MFLOP/token | MFU | step time vs residual |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var s in setups)
        {
            var t = s.Plan.Training;
            var med = Stats.Median(s.Seconds);
            var tps = t.BatchTokens / med;
            var flops = ModelCounter.Flops(s.Plan.Model, t.SeqLen).Training;
            var baseline = Stats.Median(setups.First(x => x.Preset == s.Preset && x.Connection == "residual").Seconds);
            sb.AppendLine(ci, $"| {s.Preset} | {s.Connection} | {ModelCounter.Parameters(s.Plan.Model).Total:N0} | {t.BatchTokens} ({t.MicroBatch}x{t.SeqLen} x {t.Accumulation}) | {med:F3} | {tps:F0} | {flops / 1e6:F1} | {flops * tps / peak * 100:F1}% | {med / baseline:F3} |");
        }
        foreach (var s in setups) { s.Model.Dispose(); s.Optimizer.Dispose(); }
        foreach (var d in datasets) d.Dispose();
        return sb.ToString();
    }

}
