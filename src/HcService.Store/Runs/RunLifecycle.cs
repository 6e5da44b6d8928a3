using System.Globalization;
using Npgsql;

namespace HcService.Store.Runs;

/// <summary>Lease timings and the attempt cap (docs/design.md section 5). From the environment: HC_LEASE_SECONDS (default 30),
/// HC_MAX_ATTEMPTS (default 3: a run survives two lost workers, then fails with its history).</summary>
public sealed record LeaseOptions
{
    /// <summary>How long a lease lasts without a heartbeat; a lost worker is detected within this plus one reap interval.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Attempts per submission or retry before a lost worker fails the run.</summary>
    public int MaxAttempts { get; init; } = 3;
    /// <summary>Renewal period: three heartbeats per lease, so one missed heartbeat loses nothing.</summary>
    public TimeSpan Heartbeat => Duration / 3;
    /// <summary>How often every API and worker process looks for expired leases.</summary>
    public TimeSpan ReapInterval => TimeSpan.FromSeconds(Math.Clamp(Duration.TotalSeconds / 6, 0.5, 5));
}

/// <summary>An attempt that has just started: its number (the fencing token), how long the run waited in the queue, the
/// trace of the request that created it, and what the run is (for the attempt's span and metrics).</summary>
public sealed record AttemptStart(int Attempt, double QueuedSeconds, string? TraceParent, string Name, string Preset, string Architecture,
    string Connection, int Rate, string Queue);

/// <summary>Where a run stands after the lifecycle moved it (handed back, reaped) or found it without a Hangfire job:
/// <c>queued</c> runs need a job on their <paramref name="Queue"/>; the others have ended.</summary>
public sealed record RunPlacement(long RunId, string Status, string Queue);

/// <summary>What an attempt's watcher learns about its run: whether the attempt still holds it, and whether a cancel was asked.</summary>
public readonly record struct AttemptCheck(bool Holds, bool CancelRequested);

/// <summary>A run as its training process needs it: the spec, the plan resolved at submission (null for runs submitted
/// before plans were stored) and the device queue.</summary>
public sealed record HeldRun(string Spec, string? Plan, string Queue);

/// <summary>
/// The run lifecycle, in one place: every change of a run's status and every attempt-guarded write of its state goes
/// through this class (the metric points, checkpoint records and evaluation results of an attempt through
/// <see cref="AttemptWriter"/>, evaluation jobs through <see cref="EvaluationJobs"/>). The lease protocol on the runs table: A worker claims a queued run (attempt + 1: the attempt number is the fencing
/// token), renews the lease by heartbeat, and every write of the attempt is conditional on the run still being
/// <c>running</c>/<c>cancelling</c> at that attempt. A lease that is not renewed expires; <see cref="ReapAsync"/> (run by
/// every API and worker process) then records the attempt as lost and requeues the run, or fails it once its attempts
/// are used up. All times are the database's clock, so workers' clocks do not matter.
/// </summary>
public sealed class RunLifecycle(NpgsqlDataSource db, LeaseOptions options)
{
    public LeaseOptions Options => options;

    /// <summary>The attempt guard: the run is still active at attempt <c>@attempt</c>. Every write of an attempt carries it
    /// (with the parameters <c>@run</c> and <c>@attempt</c>), so a superseded attempt writes nothing.</summary>
    internal const string AttemptHoldsRun = $"""
        "Id" = @run AND {HeldAtAttempt}
        """;

    /// <summary>The guard on the run's own row: it is active at attempt <c>@attempt</c>.</summary>
    internal const string HeldAtAttempt = $"""
        "Attempt" = @attempt AND "Status" IN {RunStatus.ActiveSql}
        """;

    /// <summary>Queued -> running under a new attempt held by <paramref name="owner"/>; null when the run is not queued
    /// (cancelled, or another worker has it), which makes a duplicate dispatch harmless.</summary>
    public async Task<AttemptStart?> StartAttemptAsync(long runId, string owner, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            WITH waiting AS (SELECT "UpdatedAt" FROM hc.runs WHERE "Id" = @run),
            claimed AS (
                UPDATE hc.runs SET "Status" = '{RunStatus.Running}', "Attempt" = "Attempt" + 1, "LeaseOwner" = @owner,
                    "LeaseExpiresAt" = now() + @lease, "StartedAt" = coalesce("StartedAt", now()), "UpdatedAt" = now()
                WHERE "Id" = @run AND "Status" = '{RunStatus.Queued}'
                RETURNING *),
            history AS (
                INSERT INTO hc.run_attempts ("RunId", "Attempt", "Worker", "StartedAt")
                SELECT "Id", "Attempt", @owner, now() FROM claimed)
            SELECT c."Attempt", extract(epoch FROM now() - w."UpdatedAt")::float8, c."TraceParent", c."Name", c."Preset", c."Architecture",
                c."Connection", c."Rate", c."Queue"
            FROM claimed c CROSS JOIN waiting w
            """);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("owner", owner);
        cmd.Parameters.AddWithValue("lease", options.Duration);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return null;
        return new AttemptStart(r.GetInt32(0), r.GetDouble(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5),
            r.GetString(6), r.GetInt32(7), r.GetString(8));
    }

    /// <summary>Extends the lease; false when this worker no longer holds the attempt (it was reaped, or the run ended).</summary>
    public async Task<bool> RenewAsync(long runId, int attempt, string owner, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            UPDATE hc.runs SET "LeaseExpiresAt" = now() + @lease
            WHERE {AttemptHoldsRun} AND "LeaseOwner" = @owner
            """);
        Bind(cmd, runId, attempt);
        cmd.Parameters.AddWithValue("owner", owner);
        cmd.Parameters.AddWithValue("lease", options.Duration);
        return await cmd.ExecuteNonQueryAsync(ct) == 1;
    }

    /// <summary>The spec, plan and device queue of a run that attempt <paramref name="attempt"/> holds; null when it does not
    /// (the run ended, or a newer attempt has it).</summary>
    public async Task<HeldRun?> HeldRunAsync(long runId, int attempt, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""SELECT "Spec", "Plan", "Queue" FROM hc.runs WHERE {AttemptHoldsRun}""");
        Bind(cmd, runId, attempt);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? new HeldRun(r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetString(2)) : null;
    }

    /// <summary>Whether attempt <paramref name="attempt"/> still holds the run, and whether a cancel was requested (the
    /// training process asks every second).</summary>
    public async Task<AttemptCheck> CheckAsync(long runId, int attempt, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            SELECT "CancelRequested", {HeldAtAttempt} FROM hc.runs WHERE "Id" = @run
            """);
        Bind(cmd, runId, attempt);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? new AttemptCheck(r.GetBoolean(1), r.GetBoolean(0)) : new AttemptCheck(false, false);
    }

    /// <summary>A user's cancel: a queued run is cancelled at once (its job, if it starts, finds it ended); a running one
    /// goes to <c>cancelling</c>, and its training process checkpoints and stops. Other states are left as they are.</summary>
    public async Task CancelAsync(long runId, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            UPDATE hc.runs SET
                "Status" = CASE WHEN "Status" = '{RunStatus.Queued}' THEN '{RunStatus.Cancelled}' ELSE '{RunStatus.Cancelling}' END,
                "FinishedAt" = CASE WHEN "Status" = '{RunStatus.Queued}' THEN now() ELSE "FinishedAt" END,
                "CancelRequested" = true, "UpdatedAt" = now()
            WHERE "Id" = @run AND "Status" IN ('{RunStatus.Queued}', '{RunStatus.Running}')
            """);
        cmd.Parameters.AddWithValue("run", runId);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>A failed or cancelled run queued again, with a fresh allowance of attempts and no Hangfire job (the caller
    /// enqueues it); false for a run in any other state.</summary>
    public async Task<bool> RetryAsync(long runId, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            UPDATE hc.runs SET "Status" = '{RunStatus.Queued}', "CancelRequested" = false, "FailureReason" = NULL,
                "MaxAttempts" = "Attempt" + @attempts, "HangfireJobId" = NULL, "FinishedAt" = NULL, "UpdatedAt" = now()
            WHERE "Id" = @run AND "Status" IN ('{RunStatus.Failed}', '{RunStatus.Cancelled}')
            """);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("attempts", options.MaxAttempts);
        return await cmd.ExecuteNonQueryAsync(ct) == 1;
    }

    /// <summary>The queue of a run that is queued without a Hangfire job (handed back just now); null otherwise.</summary>
    public async Task<string?> UnenqueuedQueueAsync(long runId, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            SELECT "Queue" FROM hc.runs WHERE "Id" = @run AND "Status" = '{RunStatus.Queued}' AND "HangfireJobId" IS NULL
            """);
        cmd.Parameters.AddWithValue("run", runId);
        return await cmd.ExecuteScalarAsync(ct) as string;
    }

    /// <summary>Remembers the Hangfire job that will start the run's next attempt.</summary>
    public async Task RecordJobAsync(long runId, string jobId, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand("""UPDATE hc.runs SET "HangfireJobId" = @job WHERE "Id" = @run""");
        cmd.Parameters.AddWithValue("job", jobId);
        cmd.Parameters.AddWithValue("run", runId);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// Ends an attempt that stopped without finishing the run (its worker is stopping, or gone) after writing a checkpoint
    /// of its current step: the run goes back to <c>queued</c> at once, without waiting for the lease to expire, and
    /// resumes from that checkpoint on the next claim; a run that was being cancelled ends <c>cancelled</c> instead. The
    /// attempt is recorded as <c>stopped</c> with <paramref name="reason"/> (also the reason of the run's status event)
    /// and does not count against the run's attempts. The run has no Hangfire job afterwards: the caller enqueues it (or
    /// the reaper does, 2 s later: <see cref="UnenqueuedAsync"/>). Fenced: null when this attempt no longer holds the run.
    /// </summary>
    public async Task<RunPlacement?> HandBackAsync(long runId, int attempt, string reason, CancellationToken ct)
    {
        await using var batch = db.CreateBatch();
        // In one implicit transaction: the reason travels to the status-event trigger through a transaction-local setting.
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT set_config('hc.event_reason', $1, true)") { Parameters = { new() { Value = reason } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            WITH handed AS (
                UPDATE hc.runs SET
                    "Status" = CASE WHEN "Status" = '{RunStatus.Cancelling}' THEN '{RunStatus.Cancelled}' ELSE '{RunStatus.Queued}' END,
                    "FinishedAt" = CASE WHEN "Status" = '{RunStatus.Cancelling}' THEN now() END,
                    "MaxAttempts" = "MaxAttempts" + 1,
                    "LeaseOwner" = NULL, "LeaseExpiresAt" = NULL, "HangfireJobId" = NULL, "UpdatedAt" = now()
                WHERE "Id" = $2 AND "Attempt" = $3 AND "Status" IN {RunStatus.ActiveSql}
                RETURNING "Id", "Status", "Queue"),
            history AS (
                UPDATE hc.run_attempts SET "EndedAt" = now(), "Outcome" = '{AttemptOutcome.Stopped}', "Reason" = $1
                WHERE "RunId" IN (SELECT "Id" FROM handed) AND "Attempt" = $3)
            SELECT "Id", "Status", "Queue" FROM handed
            """) { Parameters = { new() { Value = reason }, new() { Value = runId }, new() { Value = attempt } } });
        await using var r = await batch.ExecuteReaderAsync(ct);
        await r.NextResultAsync(ct);
        return await r.ReadAsync(ct) ? new RunPlacement(r.GetInt64(0), r.GetString(1), r.GetString(2)) : null;
    }

    /// <summary>Ends an attempt with its final status (succeeded, failed, cancelled); fenced, so false for a stale attempt.</summary>
    /// <param name="whenCancelRequested">The status and reason instead, when a cancel was requested (a training process
    /// that died while it was stopping for a cancel: the user asked for the end it got).</param>
    public async Task<bool> FinishAsync(long runId, int attempt, string status, string? reason, CancellationToken ct,
        (string Status, string Reason)? whenCancelRequested = null)
    {
        await using var cmd = db.CreateCommand($"""
            WITH ended AS (
                UPDATE hc.runs SET "Status" = CASE WHEN "CancelRequested" AND @cancelStatus IS NOT NULL THEN @cancelStatus ELSE @status END,
                    "FailureReason" = CASE WHEN "CancelRequested" AND @cancelStatus IS NOT NULL THEN @cancelReason ELSE @reason END,
                    "FinishedAt" = now(), "UpdatedAt" = now(), "LeaseOwner" = NULL, "LeaseExpiresAt" = NULL
                WHERE {AttemptHoldsRun}
                RETURNING "Id", "Status", "FailureReason"),
            history AS (
                UPDATE hc.run_attempts SET "EndedAt" = now(), "Outcome" = (SELECT "Status" FROM ended), "Reason" = (SELECT "FailureReason" FROM ended)
                WHERE "RunId" IN (SELECT "Id" FROM ended) AND "Attempt" = @attempt)
            SELECT count(*) FROM ended
            """);
        Bind(cmd, runId, attempt);
        cmd.Parameters.AddWithValue("status", status);
        cmd.Parameters.AddWithValue("reason", (object?)reason ?? DBNull.Value);
        cmd.Parameters.Add(new NpgsqlParameter("cancelStatus", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)whenCancelRequested?.Status ?? DBNull.Value });
        cmd.Parameters.Add(new NpgsqlParameter("cancelReason", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)whenCancelRequested?.Reason ?? DBNull.Value });
        return (long)(await cmd.ExecuteScalarAsync(ct))! == 1;
    }

    /// <summary>How the attempt ended as its history records it (null while it runs).</summary>
    public async Task<string?> OutcomeAsync(long runId, int attempt, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand("""SELECT "Outcome" FROM hc.run_attempts WHERE "RunId" = @run AND "Attempt" = @attempt""");
        Bind(cmd, runId, attempt);
        return await cmd.ExecuteScalarAsync(ct) as string;
    }

    /// <summary>
    /// Every running run whose lease has expired: its attempt is recorded as lost; the run goes back to <c>queued</c>
    /// (the next claim makes attempt + 1, which resumes from the latest verified checkpoint), or is failed with its
    /// history when it has used its attempts, or is cancelled when a cancel was in progress. Safe to run concurrently
    /// from many processes: each expired run is taken by exactly one of them (row locks, SKIP LOCKED).
    /// </summary>
    public async Task<IReadOnlyList<RunPlacement>> ReapAsync(CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            WITH lost AS (
                SELECT "Id", "Attempt", "MaxAttempts", "Status" AS was, coalesce("LeaseOwner", 'unknown worker') AS owner
                FROM hc.runs
                WHERE "Status" IN {RunStatus.ActiveSql} AND "LeaseExpiresAt" < now()
                  -- Right after a database restart no lease could be renewed: give the workers one lease to come back.
                  AND pg_postmaster_start_time() < now() - @lease
                FOR UPDATE SKIP LOCKED),
            history AS (
                UPDATE hc.run_attempts a SET "EndedAt" = now(), "Outcome" = '{AttemptOutcome.Lost}',
                    "Reason" = 'the lease of ' || lost.owner || ' expired (worker lost or stopped)'
                FROM lost WHERE a."RunId" = lost."Id" AND a."Attempt" = lost."Attempt" AND a."EndedAt" IS NULL),
            summary AS (
                SELECT a."RunId", string_agg(format('attempt %s on %s: %s', a."Attempt", a."Worker",
                    coalesce(CASE WHEN a."Attempt" = lost."Attempt" THEN '{AttemptOutcome.Lost}' ELSE a."Outcome" END, '{AttemptOutcome.Lost}')), '; ' ORDER BY a."Attempt") AS attempts
                FROM hc.run_attempts a JOIN lost ON a."RunId" = lost."Id" GROUP BY a."RunId")
            UPDATE hc.runs r SET
                "Status" = CASE WHEN lost.was = '{RunStatus.Cancelling}' THEN '{RunStatus.Cancelled}' WHEN lost."Attempt" >= lost."MaxAttempts" THEN '{RunStatus.Failed}' ELSE '{RunStatus.Queued}' END,
                "FailureReason" = CASE WHEN lost.was <> '{RunStatus.Cancelling}' AND lost."Attempt" >= lost."MaxAttempts"
                    THEN format('lost its worker on attempt %s of %s, so no attempts are left (%s)', lost."Attempt", lost."MaxAttempts", coalesce(summary.attempts, 'no history'))
                    ELSE r."FailureReason" END,
                "FinishedAt" = CASE WHEN lost.was = '{RunStatus.Cancelling}' OR lost."Attempt" >= lost."MaxAttempts" THEN now() ELSE NULL END,
                "LeaseOwner" = NULL, "LeaseExpiresAt" = NULL, "HangfireJobId" = NULL, "UpdatedAt" = now()
            FROM lost LEFT JOIN summary ON summary."RunId" = lost."Id"
            WHERE r."Id" = lost."Id"
            RETURNING r."Id", r."Status", r."Queue"
            """);
        cmd.Parameters.AddWithValue("lease", options.Duration);
        return await ReadRuns(cmd, ct);
    }

    /// <summary>Queued runs without a Hangfire job: new ones after 30 s (the process that queued them died, or the database
    /// dropped, between committing the run and enqueueing its job), runs that were handed back or retried after 2 s (a
    /// training process whose worker died handed its run back, and nobody else will enqueue it). They get one now; a
    /// duplicate job is harmless (a claim only takes a queued run).</summary>
    public async Task<IReadOnlyList<RunPlacement>> UnenqueuedAsync(CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            SELECT "Id", "Status", "Queue" FROM hc.runs
            WHERE "Status" = '{RunStatus.Queued}' AND "HangfireJobId" IS NULL
              AND "UpdatedAt" < now() - CASE WHEN "Attempt" = 0 THEN interval '30 seconds' ELSE interval '2 seconds' END
            ORDER BY "Id" LIMIT 100
            """);
        return await ReadRuns(cmd, ct);
    }

    static async Task<List<RunPlacement>> ReadRuns(NpgsqlCommand cmd, CancellationToken ct)
    {
        var runs = new List<RunPlacement>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) runs.Add(new RunPlacement(reader.GetInt64(0), reader.GetString(1), reader.GetString(2)));
        return runs;
    }

    static void Bind(NpgsqlCommand cmd, long runId, int attempt)
    {
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("attempt", attempt);
    }
}
