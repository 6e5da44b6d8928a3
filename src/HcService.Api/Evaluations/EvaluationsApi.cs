using System.Text.Json;
using Hangfire;
using Hangfire.States;
using HcService.Api.Auth;
using HcService.Api.Runs;
using HcService.Contract.Config;
using HcService.Contract.Evaluation;
using HcService.Contract.Jobs;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace HcService.Api.Evaluations;

/// <summary>POST /api/runs/{id}/evaluations: evaluate a stored checkpoint on downstream tasks.</summary>
/// <param name="Tasks">Known task names (arc_easy, arc_challenge, hellaswag, piqa, sciq, openbookqa, copa, winogrande,
/// boolq, mmlu) or {"name", "file", "limit"} with a file under the data root.</param>
/// <param name="Limit">Items per task (the first N); absent for all.</param>
/// <param name="BatchSize">Requests per forward pass (default 16).</param>
/// <param name="Step">The checkpoint's step (default: the run's latest checkpoint).</param>
/// <param name="Analysis">Also compute the HC connection analysis of the checkpoint (default true): GET /api/runs/{id}/analysis.</param>
public sealed record EvaluationRequest(List<EvalTaskSpec>? Tasks, int? Limit, int? BatchSize, long? Step, bool? Analysis);

/// <summary>An evaluation job and where it stands; its results are served by GET /api/runs/{id}/evaluations.</summary>
/// <param name="Id">The job's id.</param>
/// <param name="RunId">The run whose checkpoint it scores.</param>
/// <param name="Step">The checkpoint's step.</param>
/// <param name="Status">queued, running, succeeded or failed.</param>
/// <param name="Request">The request as accepted, its step filled in.</param>
/// <param name="Worker">The worker that ran it; null before one took it.</param>
/// <param name="FailureReason">Why it failed.</param>
/// <param name="CreatedAt">When it was submitted.</param>
/// <param name="StartedAt">When a worker started it.</param>
/// <param name="FinishedAt">When it ended.</param>
/// <param name="ResultsUrl">Where its results are once it succeeded.</param>
public sealed record EvaluationJobInfo(long Id, long RunId, long Step, string Status, JsonElement Request, string? Worker, string? FailureReason,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, string ResultsUrl)
{
    public static EvaluationJobInfo Of(EvaluationJob j) => new(j.Id, j.RunId, j.Step, j.Status, JsonDocument.Parse(j.Request).RootElement.Clone(),
        j.Worker, j.FailureReason, j.CreatedAt, j.StartedAt, j.FinishedAt, $"/api/runs/{j.RunId}/evaluations?step={j.Step}");
}

public static class EvaluationsApi
{
    public static void MapEvaluations(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/runs/{id:long}/evaluations", StoredResults).WithName("listRunEvaluations").WithTags("Evaluations").RequireScope(Scopes.Read)
            .WithSummary("Stored evaluation results of a run by checkpoint step, task and metric, each accuracy with its standard error");
        app.MapPost("/api/runs/{id:long}/evaluations", Submit).WithName("submitEvaluation").WithTags("Evaluations").RequireScope(Scopes.Submit)
            .WithSummary("Evaluate a stored checkpoint on downstream zero-shot tasks (a job on a worker); 202 with the job");
        app.MapGet("/api/runs/{id:long}/analysis", Analysis).WithName("getAnalysis").WithTags("Evaluations").RequireScope(Scopes.Read)
            .WithSummary("HC connection analysis of a checkpoint (from its evaluation job): static matrices, dynamic-weight statistics, unfolded connection matrix, adjacent-layer cosine similarity")
            .Produces(200, contentType: "application/json");
        app.MapGet("/api/runs/{id:long}/analysis/heatmap.svg", Heatmap).WithName("getAnalysisHeatmap").WithTags("Evaluations").RequireScope(Scopes.Read)
            .WithSummary("The unfolded connection matrix as a heatmap (source = static or dynamic)").Produces(200, contentType: "image/svg+xml");
        app.MapGet("/api/evaluations/{id:long}", Get).WithName("getEvaluation").WithTags("Evaluations").RequireScope(Scopes.Read)
            .WithSummary("An evaluation job: status, request, failure reason");
    }

    /// <summary>GET /api/runs/{id}/evaluations: every stored result of the run (or of one step).</summary>
    /// <param name="id">The run.</param>
    /// <param name="step">Only the results of this checkpoint step.</param>
    static async Task<Results<Ok<IReadOnlyList<EvaluationInfo>>, NotFound<ProblemDetails>>> StoredResults(long id, HcDbContext db, long? step, CancellationToken ct)
    {
        if (!await db.Runs.AnyAsync(r => r.Id == id, ct)) return RunsApi.RunNotFound(id);
        var rows = await db.Evaluations.AsNoTracking().Where(e => e.RunId == id && (step == null || e.Step == step)).OrderBy(e => e.Step).ThenBy(e => e.Task).ToListAsync(ct);
        var errors = HcService.Contract.Evaluation.AccuracyErrors.Of(rows.Select(e => new HcService.Contract.Evaluation.StoredScore(e.Step, e.Task, e.Metric, e.Value)));
        IReadOnlyList<EvaluationInfo> list = rows.Select(e => new EvaluationInfo(e.Step, e.Task, e.Metric, e.Value, errors.GetValueOrDefault((e.Step, e.Task, e.Metric)), e.CreatedAt)).ToList();
        return TypedResults.Ok(list);
    }

    static async Task<Results<Accepted<EvaluationJobInfo>, NotFound<ProblemDetails>, ValidationProblem>> Submit(long id, EvaluationRequest request,
        HcDbContext db, HcPaths paths, IBackgroundJobClient jobs, CancellationToken ct)
    {
        var run = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct);
        if (run is null) return TypedResults.NotFound(new ProblemDetails { Title = "Run not found", Detail = $"there is no run {id}", Status = 404 });
        var errors = new List<ConfigError>();
        var tasks = request.Tasks ?? [];
        if (tasks.Count is < 1 or > 64) errors.Add(new("tasks", tasks.Count, "a list of 1 to 64 tasks"));
        if (request.Limit is not null and (< 1 or > 1_000_000)) errors.Add(new("limit", request.Limit, "an integer in [1, 1000000], or absent for every item"));
        if (request.BatchSize is not null and (< 1 or > 1024)) errors.Add(new("batchSize", request.BatchSize, "an integer in [1, 1024]"));
        var catalog = new EvalTasks(paths.DataRoot);
        for (var i = 0; i < tasks.Count; i++)
        {
            try { catalog.Resolve(tasks[i] ?? new EvalTaskSpec(""), $"tasks[{i}]"); }
            catch (ConfigException e) { errors.AddRange(e.Errors); }
        }
        var checkpoints = await db.Checkpoints.AsNoTracking().Where(c => c.RunId == id).Select(c => c.Step).OrderBy(s => s).ToListAsync(ct);
        var step = request.Step ?? (checkpoints.Count > 0 ? checkpoints[^1] : -1);
        if (!checkpoints.Contains(step))
            errors.Add(new("step", request.Step, checkpoints.Count == 0 ? "a checkpoint step (run " + id + " has no checkpoint yet)" : "one of the run's checkpoint steps: " + string.Join(", ", checkpoints)));
        if (errors.Count > 0)
            return Problems.Invalid(errors, "The evaluation request is invalid");

        var job = new EvaluationJob
        {
            RunId = id, Step = step, Status = EvaluationStatus.Queued, CreatedAt = DateTimeOffset.UtcNow,
            Request = JsonSerializer.Serialize(request with { Step = step }, JobSpec.Json),
        };
        db.EvaluationJobs.Add(job);
        await db.SaveChangesAsync(ct);
        jobs.Create<EvaluationJobRunner>(j => j.Execute(job.Id, JobCancellationToken.Null), new EnqueuedState(run.Queue));
        return TypedResults.Accepted($"/api/evaluations/{job.Id}", EvaluationJobInfo.Of(job));
    }

    /// <summary>analysis/step-N.json of the run folder: the given step, else the newest analysed one.</summary>
    static string? AnalysisFile(HcPaths paths, long id, long? step, string suffix)
    {
        var folder = Path.Combine(paths.RunFolder(id), "analysis");
        if (!Directory.Exists(folder)) return null;
        var steps = Directory.GetFiles(folder, "step-*.json").Select(f => long.TryParse(Path.GetFileNameWithoutExtension(f)[5..], out var s) ? s : -1).Where(s => s >= 0).ToList();
        var chosen = step ?? (steps.Count > 0 ? steps.Max() : -1);
        var path = Path.Combine(folder, $"step-{chosen}{suffix}");
        return steps.Contains(chosen) && File.Exists(path) ? path : null;
    }

    /// <param name="id">The run.</param>
    /// <param name="step">The analysed checkpoint step; absent: the newest analysed one.</param>
    static Results<PhysicalFileHttpResult, NotFound<ProblemDetails>> Analysis(long id, long? step, HcPaths paths) =>
        AnalysisFile(paths, id, step, ".json") is { } path ? TypedResults.PhysicalFile(path, "application/json")
            : TypedResults.NotFound(new ProblemDetails { Title = "No analysis", Detail = $"run {id} has no analysis{(step is null ? "" : $" at step {step}")}: POST /api/runs/{id}/evaluations computes one", Status = 404 });

    /// <summary>The matrix as the analysis file stores it (ConnectionMatrix in the training core).</summary>
    sealed record StoredMatrix(double[][] Values, string[] ReadingLabels, string[] WritingLabels, string Source);

    /// <summary>Drawn on request from analysis/step-N.json, so that every analysis ever stored gets the current picture.</summary>
    /// <param name="id">The run.</param>
    /// <param name="step">The analysed checkpoint step; absent: the newest analysed one.</param>
    /// <param name="source">static (default): the static weights; dynamic: the dynamic weights' token mean.</param>
    static async Task<Results<ContentHttpResult, NotFound<ProblemDetails>, ValidationProblem>> Heatmap(long id, long? step, string? source, HcPaths paths, CancellationToken ct)
    {
        if (source is not (null or "static" or "dynamic"))
            return Problems.InvalidQuery([new ConfigError("source", source, "static or dynamic")]);
        source ??= "static";
        var path = AnalysisFile(paths, id, step, ".json");
        StoredMatrix? matrix = null;
        if (path is not null)
        {
            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(path, ct));
            if (doc.RootElement.TryGetProperty($"{source}Matrix", out var m) && m.ValueKind == JsonValueKind.Object)
                matrix = m.Deserialize<StoredMatrix>(JsonSerializerOptions.Web);
        }
        if (matrix is null)
            return TypedResults.NotFound(new ProblemDetails { Title = "No heatmap", Detail = $"run {id} has no {source} connection matrix{(step is null ? "" : $" at step {step}")} (residual and post-norm runs have a static one only for residual)", Status = 404 });
        var at = Path.GetFileNameWithoutExtension(path)!.Replace("step-", "step ");
        var title = source == "static" ? $"connection matrix, static weights, {at}" : $"connection matrix, dynamic weights (token mean), {at}";
        return TypedResults.Content(Plots.Heatmap.ConnectionMatrix(matrix.Values, matrix.ReadingLabels, matrix.WritingLabels, title), "image/svg+xml");
    }

    static async Task<Results<Ok<EvaluationJobInfo>, NotFound<ProblemDetails>>> Get(long id, HcDbContext db, CancellationToken ct) =>
        await db.EvaluationJobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct) is { } job
            ? TypedResults.Ok(EvaluationJobInfo.Of(job))
            : TypedResults.NotFound(new ProblemDetails { Title = "Evaluation not found", Detail = $"there is no evaluation {id}", Status = 404 });
}
