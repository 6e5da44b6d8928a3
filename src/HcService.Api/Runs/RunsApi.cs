using System.Text;
using System.Text.Json;
using Hangfire;
using Hangfire.States;
using HcService.Api.Auth;
using HcService.Contract.Config;
using HcService.Contract.Jobs;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace HcService.Api.Runs;

/// <summary>The /api/runs routes (docs/design.md section 3.3).</summary>
public static class RunsApi
{
    public static RouteGroupBuilder MapRuns(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/runs").WithTags("Runs").RequireScope(Scopes.Read);
        g.MapPost("/", Submit).WithName("submitRun").WithSummary("Submit a job spec").WithDescription(
            "Validates the spec (docs/design.md section 4) and queues a run. 201 with Location; 400 ProblemDetails naming every invalid field, its value and what is allowed.")
            .Accepts<JobSpec>("application/json").RequireScope(Scopes.Submit);
        g.MapGet("/", List).WithName("listRuns").WithSummary("List runs, newest first, filtered by status, connection, architecture, preset or tag");
        g.MapGet("/{id:long}", Get).WithName("getRun").WithSummary("A run: spec, status, progress with ETA, attempts, timings, latest metrics, failure reason");
        g.MapPost("/{id:long}/cancel", Cancel).WithName("cancelRun").WithSummary("Cancel: a queued run at once; a running run stops within 10 s after a final checkpoint").RequireScope(Scopes.Submit);
        g.MapPost("/{id:long}/retry", Retry).WithName("retryRun").WithSummary("Requeue a failed or cancelled run; it resumes from its latest verified checkpoint").RequireScope(Scopes.Submit);
        g.MapGet("/{id:long}/metrics", Metrics).WithName("getRunMetrics").WithSummary("Metric series by name and step range, downsampled server-side to maxPoints");
        g.MapGet("/{id:long}/checkpoints", Checkpoints).WithName("listCheckpoints").WithSummary("Checkpoints of a run (step, tokens, size, sha256)");
        g.MapGet("/{id:long}/checkpoints/{step:long}", DownloadCheckpoint).WithName("downloadCheckpoint").WithSummary("Download a checkpoint file").Produces(200, contentType: "application/octet-stream");
        g.MapRunEvents();
        return g;
    }

    /// <param name="idempotencyKey">At most 200 printable characters: the same key with the same request returns the run it
    /// created (200), with another request a 422; scoped to the calling API key.</param>
    /// <param name="queue">cpu (default) or cuda: the workers that may take the run.</param>
    static async Task<Results<Created<RunSummary>, Ok<RunSummary>, ValidationProblem, UnprocessableEntity<ProblemDetails>>> Submit(
        HttpRequest request, HcDbContext db, RunLifecycle lifecycle, SpecValidator validator, RunDurationCap durationCap, IBackgroundJobClient jobs, LeaseOptions leases,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, [FromQuery] string? queue, CancellationToken ct)
    {
        string body;
        using (var reader = new StreamReader(request.Body)) body = await reader.ReadToEndAsync(ct);
        JobSpec spec;
        try { spec = JobSpec.Parse(body); }
        catch (ConfigException e) { return Problem(e.Errors); }
        var device = DeviceQueues.Parse(queue);
        if (device is null) return Problems.InvalidQuery([new("queue", queue, DeviceQueues.Allowed)]);
        if (spec.Tags?.FirstOrDefault(t => t?.StartsWith(HcService.Api.Evaluations.GroupsApi.TagPrefix, StringComparison.Ordinal) == true) is { } reserved)
            return Problem([new("tags", reserved, $"tags not starting with '{HcService.Api.Evaluations.GroupsApi.TagPrefix}': group membership is given by POST /api/groups only")]);
        if (idempotencyKey is { Length: > 200 } || idempotencyKey?.Any(char.IsControl) == true)
            return Problem([new("Idempotency-Key", Shorten(idempotencyKey), "a header value of at most 200 printable characters")]);
        // Idempotency-Key (IETF httpapi draft): scoped to the calling key and bound to the request it was first sent with;
        // a retry of a committed request gets its run even if validation would now answer otherwise (a dataset changed).
        var owner = ApiKeys.CallerId(request.HttpContext.User) is { } keyId ? $"key:{keyId}" : "anonymous";
        var requestSha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes($"{queue ?? DeviceQueues.Cpu}\n{body}")));
        async Task<Results<Created<RunSummary>, Ok<RunSummary>, ValidationProblem, UnprocessableEntity<ProblemDetails>>?> Replay()
        {
            var existing = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.IdempotencyOwner == owner && r.IdempotencyKey == idempotencyKey, ct);
            if (existing is null) return null;
            if (existing.IdempotencyRequestSha256 == requestSha) return TypedResults.Ok(RunSummary.Of(existing));
            return TypedResults.UnprocessableEntity(new ProblemDetails
            {
                Title = "Idempotency-Key reused with another request", Status = 422,
                Detail = $"Idempotency-Key '{Shorten(idempotencyKey!)}' was first sent with a different request (run {existing.Id}); use a new key for a new request",
            });
        }
        if (idempotencyKey is not null && await Replay() is { } replayed) return replayed;
        var (plan, errors) = validator.Validate(spec, device.Value);
        if (plan is null) return Problem(errors);
        if (await durationCap.CheckAsync(plan, device.Value, ct) is { } tooLong) return Problem([tooLong]);

        var now = DateTimeOffset.UtcNow;
        var run = NewRun(spec, plan, device.Value, leases, now);
        (run.IdempotencyKey, run.IdempotencyOwner, run.IdempotencyRequestSha256) = idempotencyKey is null ? (null, null, null) : (idempotencyKey, owner, requestSha);
        db.Runs.Add(run);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) when (idempotencyKey is not null)
        {
            // A concurrent request with the same key won the insert: answer as a replay of it.
            if (await Replay() is { } winner) return winner;
            throw;
        }
        // The run is committed: answer 201 even if the database drops now; the lease reaper enqueues a committed run that
        // has no job yet (after 30 s), so that a client never retries a submission that took effect.
        try { run.HangfireJobId = await RunQueue.EnqueueAsync(lifecycle, jobs, run.Id, run.Queue, ct); }
        catch (Exception e) when (ErrorAnswers.DatabaseAway(e)) { }
        HcInstruments.RunsSubmitted.Add(1);
        return TypedResults.Created($"/api/runs/{run.Id}", RunSummary.Of(run));
    }

    /// <summary>A queued run of a validated spec, carrying the trace of the request that creates it.</summary>
    internal static Run NewRun(JobSpec spec, JobPlan plan, DeviceKind device, LeaseOptions leases, DateTimeOffset now) => new()
    {
        Name = plan.Name, Spec = spec.ToJson(), Plan = plan.ToJson(), Preset = plan.Model.Name, Architecture = Names.Of(plan.Model.Architecture),
        Connection = Names.Of(plan.Model.Connection.Type), Rate = plan.Model.Connection.StreamCount /* streams, or frac's fractions */, Tags = [.. plan.Tags],
        Status = RunStatus.Queued, Queue = DeviceQueues.Of(device), TotalSteps = plan.Training.Steps,
        TokenBudget = plan.Training.Steps * plan.Training.BatchTokens, MaxAttempts = leases.MaxAttempts,
        TraceParent = System.Diagnostics.Activity.Current?.Id, CreatedAt = now, UpdatedAt = now,
    };

    static ValidationProblem Problem(IEnumerable<ConfigError> errors) => Problems.Invalid(errors, "The job spec is invalid");

    static string Shorten(string value) => value.Length > 40 ? value[..40] + "..." : value;

    /// <param name="status">Only runs in this status.</param>
    /// <param name="connection">Only runs of this connection type (residual, dynamic-hc, ...; exact).</param>
    /// <param name="architecture">Only dense or only moe runs.</param>
    /// <param name="preset">Only runs of this preset (exact).</param>
    /// <param name="tag">Only runs with this tag (exact; a group's runs: group:NAME).</param>
    /// <param name="page">The page, from 1.</param>
    /// <param name="pageSize">Runs per page, 1 to 500.</param>
    static async Task<Results<Ok<RunPage>, ValidationProblem>> List(HcDbContext db, NpgsqlDataSource data, string? status, string? connection, string? architecture,
        string? preset, string? tag, int page = 1, int pageSize = 50, CancellationToken ct = default)
    {
        if (status is not null && !RunStatus.All.Contains(status)) return Problems.InvalidQuery([new("status", status, "one of " + string.Join(", ", RunStatus.All))]);
        if (pageSize is < 1 or > 500) return Problems.InvalidQuery([new("pageSize", pageSize, "an integer in [1, 500]")]);
        if (page < 1 || (long)(page - 1) * pageSize > int.MaxValue) return Problems.InvalidQuery([new("page", page, $"an integer in [1, {int.MaxValue / pageSize + 1}] at pageSize {pageSize}")]);
        var q = db.Runs.AsNoTracking();
        if (status is not null) q = q.Where(r => r.Status == status);
        if (connection is not null) q = q.Where(r => r.Connection == connection);
        if (architecture is not null) q = q.Where(r => r.Architecture == architecture);
        if (preset is not null) q = q.Where(r => r.Preset == preset);
        if (tag is not null) q = q.Where(r => r.Tags.Contains(tag));
        var total = await q.CountAsync(ct);
        var items = await q.OrderByDescending(r => r.Id).Skip((page - 1) * pageSize).Take(pageSize).ToListAsync(ct);
        var latest = await MetricQueries.LatestLossesAsync(data, items.Select(r => r.Id).ToArray(), ct);
        return TypedResults.Ok(new RunPage(items.Select(RunSummary.Of).ToList(), total, page, pageSize, latest));
    }

    static async Task<Results<Ok<RunDetail>, NotFound<ProblemDetails>>> Get(long id, HcDbContext db, CancellationToken ct)
    {
        var run = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct);
        if (run is null) return RunNotFound(id);
        var latest = await db.Metrics.AsNoTracking().Where(m => m.RunId == id)
            .GroupBy(m => m.Name).Select(g => g.OrderByDescending(m => m.Step).First()).ToListAsync(ct);
        var attempts = await db.Attempts.AsNoTracking().Where(a => a.RunId == id).OrderBy(a => a.Attempt)
            .Select(a => new AttemptInfo(a.Attempt, a.Worker, a.StartedAt, a.EndedAt, a.Outcome, a.Reason)).ToListAsync(ct);
        var lease = run.LeaseOwner is { } owner && run.LeaseExpiresAt is { } expires ? new LeaseInfo(owner, expires) : null;
        var summary = RunSummary.Of(run);
        return TypedResults.Ok(new RunDetail(summary, JsonDocument.Parse(run.Spec).RootElement.Clone(), summary.EtaSeconds,
            latest.ToDictionary(m => m.Name, m => new MetricValue(m.Step, m.Tokens, m.Value)), lease, run.MaxAttempts, attempts));
    }

    static async Task<Results<Ok<RunSummary>, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> Cancel(long id, HcDbContext db, RunLifecycle lifecycle,
        CancellationToken ct)
    {
        await lifecycle.CancelAsync(id, ct);
        var run = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct);
        if (run is null) return RunNotFound(id);
        if (run.Status is not (RunStatus.Cancelled or RunStatus.Cancelling))
            return TypedResults.Conflict(new ProblemDetails { Title = "The run cannot be cancelled", Detail = $"run {id} is {run.Status}", Status = 409 });
        return TypedResults.Ok(RunSummary.Of(run));
    }

    static async Task<Results<Ok<RunSummary>, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> Retry(long id, HcDbContext db,
        RunLifecycle lifecycle, IBackgroundJobClient jobs, CancellationToken ct)
    {
        var retried = await lifecycle.RetryAsync(id, ct);   // a fresh allowance of attempts
        var run = await db.Runs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct);
        if (run is null) return RunNotFound(id);
        if (!retried)
            return TypedResults.Conflict(new ProblemDetails { Title = "Only failed or cancelled runs can be retried", Detail = $"run {id} is {run.Status}", Status = 409 });
        await RunQueue.EnqueueAsync(lifecycle, jobs, run.Id, run.Queue, ct);
        return TypedResults.Ok(RunSummary.Of(run));
    }

    /// <param name="id">The run.</param>
    /// <param name="names">Comma-separated metric names (at most 200, each at most 200 characters); absent: every metric.</param>
    /// <param name="fromStep">The first step of the range (inclusive).</param>
    /// <param name="toStep">The last step of the range (inclusive).</param>
    /// <param name="maxPoints">At most this many points a series, 3 to 100000: longer ranges come back as bucket means.</param>
    static async Task<Results<Ok<IReadOnlyList<MetricSeries>>, NotFound<ProblemDetails>, ValidationProblem>> Metrics(long id, HcDbContext db,
        NpgsqlDataSource dataSource, string? names, long? fromStep, long? toStep, int maxPoints = 1000, CancellationToken ct = default)
    {
        if (maxPoints is < 3 or > 100_000) return Problems.InvalidQuery([new("maxPoints", maxPoints, "an integer in [3, 100000]")]);
        var wanted = names?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (wanted.Length > 200 || wanted.Any(n => n.Length > 200)) return Problems.InvalidQuery([new("names", names?.Length > 80 ? names[..80] + "..." : names, "at most 200 comma-separated metric names")]);
        if (!await db.Runs.AnyAsync(r => r.Id == id, ct)) return RunNotFound(id);
        if (names is null) wanted = [.. await MetricQueries.NamesAsync(dataSource, id, ct)];
        var series = new List<MetricSeries>();
        foreach (var name in wanted.Distinct().Order(StringComparer.Ordinal))
            if (await MetricQueries.SeriesAsync(dataSource, id, name, fromStep, toStep, maxPoints, ct) is { Count: > 0 } points)
                series.Add(new MetricSeries(name, points));
        return TypedResults.Ok<IReadOnlyList<MetricSeries>>(series);
    }

    static async Task<Results<Ok<IReadOnlyList<CheckpointInfo>>, NotFound<ProblemDetails>>> Checkpoints(long id, HcDbContext db, CancellationToken ct)
    {
        if (!await db.Runs.AnyAsync(r => r.Id == id, ct)) return RunNotFound(id);
        IReadOnlyList<CheckpointInfo> list = (await db.Checkpoints.AsNoTracking().Where(c => c.RunId == id).OrderBy(c => c.Step).ToListAsync(ct))
            .Select(c => new CheckpointInfo(c.Step, c.Tokens, c.Bytes, c.Sha256, c.CreatedAt, $"/api/runs/{id}/checkpoints/{c.Step}")).ToList();
        return TypedResults.Ok(list);
    }

    static async Task<Results<PhysicalFileHttpResult, NotFound<ProblemDetails>>> DownloadCheckpoint(long id, long step, HcDbContext db, HcPaths paths, HttpResponse response, CancellationToken ct)
    {
        var c = await db.Checkpoints.AsNoTracking().FirstOrDefaultAsync(c => c.RunId == id && c.Step == step, ct);
        if (c is null) return TypedResults.NotFound(new ProblemDetails { Title = "Checkpoint not found", Detail = $"run {id} has no checkpoint at step {step}", Status = 404 });
        // Only inside the checkpoint store, whatever the record says.
        var path = c.Location.Any(char.IsControl) ? null : HcService.Contract.Data.PathIdentity.Inside(paths.CheckpointRoot, Path.Combine(paths.CheckpointRoot, c.Location));
        if (path is null || !File.Exists(path))
            return TypedResults.NotFound(new ProblemDetails { Title = "Checkpoint file not found", Detail = $"the file of run {id} step {step} is gone (retention keeps the newest)", Status = 404 });
        response.Headers["X-Checkpoint-Sha256"] = c.Sha256;
        return TypedResults.PhysicalFile(path, "application/octet-stream", Path.GetFileName(path));
    }

    internal static NotFound<ProblemDetails> RunNotFound(long id) =>
        TypedResults.NotFound(new ProblemDetails { Title = "Run not found", Detail = $"there is no run {id}", Status = 404 });
}
