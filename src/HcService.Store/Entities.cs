using HcService.Store.Runs;
namespace HcService.Store;

/// <summary>One training run: its spec, what it is, and where it is.</summary>
public sealed class Run
{
    public long Id { get; set; }
    public required string Name { get; set; }
    /// <summary>The submitted job spec (jsonb).</summary>
    public required string Spec { get; set; }
    /// <summary>The job plan the API resolved from the spec at submission (jsonb): every default filled in, validated. The
    /// training and evaluation processes run it as it is, without resolving the spec again. Null for runs submitted
    /// before plans were stored: those resolve their spec when they start.</summary>
    public string? Plan { get; set; }
    public required string Preset { get; set; }
    public required string Architecture { get; set; }
    /// <summary>Connection type: residual, post-norm, static-hc, dynamic-hc.</summary>
    public required string Connection { get; set; }
    /// <summary>The trunk's rows: the expansion rate n (static-hc, dynamic-hc, mhc, mhc-lite), the fractions m (frac), 1 otherwise.</summary>
    public int Rate { get; set; }
    public string[] Tags { get; set; } = [];
    /// <summary>A <see cref="Runs.RunStatus"/>.</summary>
    public required string Status { get; set; }
    /// <summary>Device queue: cpu or cuda.</summary>
    public required string Queue { get; set; }
    /// <summary>Attempts started so far; the current attempt's number is the fencing token of its writes.</summary>
    public int Attempt { get; set; }
    /// <summary>The attempt number after which a lost worker fails the run instead of requeueing it (a retry extends it).</summary>
    public int MaxAttempts { get; set; }
    /// <summary>The worker holding the current attempt's lease (host:pid:queue), while running.</summary>
    public string? LeaseOwner { get; set; }
    /// <summary>When the lease runs out unless its worker renews it; an expired lease means the worker is lost.</summary>
    public DateTimeOffset? LeaseExpiresAt { get; set; }
    public long TotalSteps { get; set; }
    public long TokenBudget { get; set; }
    public long Step { get; set; }
    public long Tokens { get; set; }
    public string? FailureReason { get; set; }
    public bool CancelRequested { get; set; }
    public string? HangfireJobId { get; set; }
    /// <summary>The experiment group the run was created in (POST /api/groups), the only way to join one.</summary>
    public string? Group { get; set; }
    public string? IdempotencyKey { get; set; }
    /// <summary>Whose Idempotency-Key it is: the calling API key ("key:ID"), or "anonymous" with keys turned off. Keys are
    /// scoped to their owner: another caller's equal key is a different key.</summary>
    public string? IdempotencyOwner { get; set; }
    /// <summary>SHA-256 of the request the Idempotency-Key was first sent with (body and query): a reuse with another
    /// request is refused (422).</summary>
    public string? IdempotencyRequestSha256 { get; set; }
    /// <summary>W3C traceparent of the request that created the run: each attempt's span links to it.</summary>
    public string? TraceParent { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>An experiment group: a grid of runs created together by one POST /api/groups; its name is unique.</summary>
public sealed class RunGroup
{
    public required string Name { get; set; }
    /// <summary>The API key that created it (null for groups from before keys were recorded).</summary>
    public long? CreatedByKeyId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>One value of one metric at one step. Keyed by (run, name, step): a replayed step overwrites, never duplicates.</summary>
public sealed class MetricPoint
{
    public long RunId { get; set; }
    public required string Name { get; set; }
    public long Step { get; set; }
    public long Tokens { get; set; }
    public double Value { get; set; }
    public DateTimeOffset Time { get; set; }
    /// <summary>Where the point stands in the order its run's writes committed (from sequence <c>hc.metric_point_seq</c>;
    /// a writer takes the run's row lock before drawing): the event stream's cursor. A rewrite with a new value takes a new
    /// number, so a client following the stream receives the corrected point.</summary>
    public long Seq { get; set; }
}

/// <summary>
/// One status transition of a run, recorded by a trigger on <c>hc.runs</c> in the transaction that made it (so none is
/// missed and they are in commit order per run): submitted (queued), claimed (running at an attempt), cancelling,
/// handed back or requeued after a lost worker (queued), retried (queued), and the final state with its reason.
/// </summary>
public sealed class RunEvent
{
    public long Id { get; set; }
    public long RunId { get; set; }
    public required string Status { get; set; }
    /// <summary>The status before the transition (null when the run was created).</summary>
    public string? Previous { get; set; }
    public int Attempt { get; set; }
    public long Step { get; set; }
    public long TotalSteps { get; set; }
    public string? Reason { get; set; }
    public DateTimeOffset Time { get; set; }
}

/// <summary>A checkpoint file in the checkpoint store, verified by its sha256.</summary>
public sealed class CheckpointEntry
{
    public long RunId { get; set; }
    public long Step { get; set; }
    public long Tokens { get; set; }
    public long Bytes { get; set; }
    public required string Sha256 { get; set; }
    /// <summary>Path relative to the checkpoint store.</summary>
    public required string Location { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>One evaluation number: (run, checkpoint step, task, metric).</summary>
public sealed class EvaluationResult
{
    public long RunId { get; set; }
    public long Step { get; set; }
    public required string Task { get; set; }
    public required string Metric { get; set; }
    public double Value { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>One attempt of a run: which worker ran it, from when to when, and how it ended (the history shown with a run).</summary>
public sealed class RunAttempt
{
    public long RunId { get; set; }
    public int Attempt { get; set; }
    public required string Worker { get; set; }
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset? EndedAt { get; set; }
    /// <summary>An <see cref="Runs.AttemptOutcome"/>: succeeded, failed, cancelled, stopped (checkpointed and handed back) or lost (its lease expired).</summary>
    public string? Outcome { get; set; }
    public string? Reason { get; set; }
}

/// <summary>An API key: only its SHA-256 is stored; the key itself is shown once, when it is created.</summary>
public sealed class ApiKey
{
    public long Id { get; set; }
    public required string Name { get; set; }
    /// <summary>The key's first characters, to tell keys apart in listings.</summary>
    public required string Prefix { get; set; }
    /// <summary>Lower-case hex SHA-256 of the whole key.</summary>
    public required string Hash { get; set; }
    /// <summary>read, submit, admin (each includes the ones before it).</summary>
    public required string Scope { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}

/// <summary>An on-demand downstream evaluation of one stored checkpoint: a job a worker runs in a child process.</summary>
public sealed class EvaluationJob
{
    public long Id { get; set; }
    public long RunId { get; set; }
    /// <summary>The checkpoint's step.</summary>
    public long Step { get; set; }
    /// <summary>The request: {"tasks": [...], "limit": N, "batchSize": N} (jsonb).</summary>
    public required string Request { get; set; }
    /// <summary>An <see cref="Runs.EvaluationStatus"/>: queued, running, succeeded, failed.</summary>
    public required string Status { get; set; }
    public string? Worker { get; set; }
    public string? FailureReason { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
}
