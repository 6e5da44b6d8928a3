using System.CommandLine;
using System.Text.Json;
using HcService.Contract.Analysis;
using HcService.Core.Analysis;
using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Contract.Evaluation;
using HcService.Core.Evaluation;
using HcService.Contract.Jobs;
using HcService.Core.Model;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Npgsql;
using TorchSharp;
using HcService.Cli.Processes;

namespace HcService.Cli.Children;

/// <summary>
/// `hc run-eval --eval-id N`: the child process of an evaluation job. Loads the run's checkpoint at the job's step (its
/// sha256 verified) into the run's model, scores the requested downstream tasks with the training data's tokenizer
/// (<see cref="DownstreamEvaluator"/>, the same code as in-loop evaluation), and stores every (task, metric) for
/// (run, step) before marking the job succeeded; a bad request or a missing file fails the job with the reason.
/// </summary>
static class RunEvalCommand
{
    public static Command Create()
    {
        var id = new Option<long>("--eval-id") { Required = true };
        var cmd = new Command("run-eval", "(internal) Score a checkpoint on downstream tasks for a worker") { Hidden = true };
        cmd.Add(id);
        cmd.SetAction(r => Run(r.GetValue(id)));
        return cmd;
    }

    /// <summary>The body of POST /api/runs/{id}/evaluations, as stored with the job.</summary>
    public sealed record Request(List<EvalTaskSpec>? Tasks, int? Limit, int? BatchSize, long? Step, bool? Analysis);

    static int Run(long evaluationId)
    {
        var (connectionString, settings) = ChildRunner.Settings();
        var paths = settings.Paths;
        using var db = NpgsqlDataSource.Create(connectionString);
        var jobs = new EvaluationJobs(db);
        if (jobs.Running(evaluationId) is not { } job) { Console.Error.WriteLine($"evaluation {evaluationId} is not running: nothing to do"); return 0; }
        var (runId, step, requestJson, spec, queue) = (job.RunId, job.Step, job.Request, job.Spec, job.Queue);
        if (job.Location is not { } location || job.Sha256 is null)
            return Fail(jobs, evaluationId, $"run {runId} has no checkpoint at step {step} any more (retention keeps the newest)");

        var path = Path.GetFullPath(Path.Combine(paths.CheckpointRoot, location));
        if (!path.StartsWith(Path.GetFullPath(paths.CheckpointRoot) + Path.DirectorySeparatorChar, StringComparison.Ordinal) || !CheckpointStore.Verify(path))
            return Fail(jobs, evaluationId, $"the checkpoint file of run {runId} step {step} is missing or does not match its sha256");
        try
        {
            var request = JsonSerializer.Deserialize<Request>(requestJson, JobSpec.Json)!;
            var device = DeviceQueues.DeviceOf(queue);
            var plan = JobPlan.Stored(job.Plan, JobSpec.Parse(spec), device);
            var tasks = DownstreamEvaluator.Load(paths.DataRoot, request.Tasks ?? [], request.Limit, "tasks");
            var evaluator = new DownstreamEvaluator(tasks, TokenizerOf(paths.DataRoot, plan), request.BatchSize ?? 16);
            using var model = new LanguageModel(plan.Model);
            if (device == DeviceKind.Cuda) model.to(TorchSharp.torch.CUDA);
            CheckpointStore.Load(path, model, null);
            Console.WriteLine($"evaluation {evaluationId}: run {runId} step {step}, {tasks.Count} tasks, {tasks.Sum(t => t.Items.Count)} items");
            var results = evaluator.Evaluate(model, Console.WriteLine);
            if (request.Analysis != false) Analyse(model, plan, paths, runId, step);

            if (!DbRetry.Run(() => jobs.Succeed(evaluationId, runId, step, results), TimeSpan.FromMinutes(10), Console.Error.WriteLine))
                Console.Error.WriteLine($"evaluation {evaluationId} is no longer running: its results were not stored");
            return 0;
        }
        catch (Exception e) when (e is ConfigException or InvalidDataException or FileNotFoundException or JsonException)
        {
            return Fail(jobs, evaluationId, e.Message);
        }
    }

    /// <summary>
    /// The HC connection analysis of the checkpoint (docs/hc-math.md section 8) on a sample batch of the run's first validation
    /// set (8 windows from its start): static matrices, dynamic-weight statistics, the unfolded connection matrix and
    /// the cosine similarity of adjacent layers, as analysis/step-N.json in the run folder, served by the API (which also
    /// draws the matrices as heatmaps from it).
    /// </summary>
    static void Analyse(LanguageModel model, JobPlan plan, HcPaths paths, long runId, long step)
    {
        var set = plan.ValidationSets.FirstOrDefault() ?? plan.TrainSet;
        using var whole = new TokenDataset(new DataCatalog(paths.DataRoot).Resolve(set, plan.ValidationSets.Count > 0 ? "data.validation[0]" : "data.train"));
        var data = TrainingRun.Split(whole, plan).HeldOut ?? whole;   // a held-out tail is a view of the whole
        int batch = 8, seq = (int)Math.Min(plan.Training.SeqLen, data.Length / 8);
        var ids = new long[batch * seq];
        for (var b = 0; b < batch; b++) data.Read((long)b * seq, ids.AsSpan(b * seq, seq));
        using var tokens_BT = torch.tensor(ids, [batch, seq], torch.int64);
        ConnectionReport report;
        try { report = ConnectionReport.Of(model, tokens_BT.to(model.parameters().First().device)); }
        catch (ArgumentException e) { Console.WriteLine($"analysis skipped: {e.Message}"); return; }
        var folder = Path.Combine(paths.RunFolder(runId), "analysis");
        Directory.CreateDirectory(folder);
        // Written aside and renamed: the API parses this file on every heatmap request and must never see half of it.
        var path = Path.Combine(folder, $"step-{step}.json");
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(report, JobSpec.Json));
        File.Move(path + ".tmp", path, overwrite: true);
        Console.WriteLine($"analysis: adjacent-layer cosine {string.Join(" ", report.Similarity.AdjacentCosine.Select(c => c.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}");
    }

    /// <summary>The tokenizer of the run's training data (its manifest names it).</summary>
    internal static ITextTokenizer TokenizerOf(string dataRoot, JobPlan plan)
    {
        var folder = new DataCatalog(dataRoot).Resolve(plan.TrainSet, "data.train");
        var manifest = DatasetManifest.Parse(File.ReadAllText(Path.Combine(folder, DatasetManifest.FileName)), folder);
        return TextTokenizers.Create(manifest.Tokenizer);
    }

    static int Fail(EvaluationJobs jobs, long id, string reason)
    {
        DbRetry.Run(() => { jobs.FailAsync(id, reason, CancellationToken.None).GetAwaiter().GetResult(); return true; }, TimeSpan.FromMinutes(10), Console.Error.WriteLine);
        Console.Error.WriteLine($"evaluation {id} failed: {reason}");
        return 1;
    }
}
