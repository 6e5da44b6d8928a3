using HcService.Contract.Evaluation;
using Npgsql;

namespace HcService.Store.Runs;

/// <summary>An evaluation job a worker has started: the run and checkpoint it scores, its request, the run's spec and
/// queue and stored plan, and the checkpoint's stored location and sha256 (null when retention has removed it since).</summary>
public sealed record RunningEvaluation(long RunId, long Step, string Request, string Spec, string? Plan, string Queue, string? Location, string? Sha256);

/// <summary>
/// The lifecycle of on-demand evaluation jobs (<c>hc.evaluation_jobs</c>): queued -> running -> succeeded | failed.
/// A job left running by a worker whose Hangfire server has stopped beating (lost) can be started again. The results
/// and the job's success commit together, and only while the job is still running.
/// </summary>
public sealed class EvaluationJobs(NpgsqlDataSource db)
{
    /// <summary>queued (or running on a lost worker) -> running on <paramref name="worker"/>; false when the job is not
    /// there to take (done, or running on a live worker: a duplicate dispatch).</summary>
    public async Task<bool> StartAsync(long evaluationId, string worker, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            UPDATE hc.evaluation_jobs SET "Status" = '{EvaluationStatus.Running}', "Worker" = @worker, "StartedAt" = now()
            WHERE "Id" = @id AND ("Status" = '{EvaluationStatus.Queued}' OR ("Status" = '{EvaluationStatus.Running}' AND NOT EXISTS (
                SELECT 1 FROM hangfire.server s WHERE starts_with(s.id, lower("Worker") || ':') AND s.lastheartbeat > now() - interval '1 minute')))
            """);
        cmd.Parameters.AddWithValue("id", evaluationId);
        cmd.Parameters.AddWithValue("worker", worker);
        return await cmd.ExecuteNonQueryAsync(ct) == 1;
    }

    /// <summary>The job as its evaluation process needs it; null unless it is running.</summary>
    public RunningEvaluation? Running(long evaluationId)
    {
        using var cmd = db.CreateCommand($"""
            SELECT j."RunId", j."Step", j."Request"::text, r."Spec"::text, r."Queue", c."Location", c."Sha256", r."Plan"::text
            FROM hc.evaluation_jobs j JOIN hc.runs r ON r."Id" = j."RunId" LEFT JOIN hc.checkpoints c ON c."RunId" = j."RunId" AND c."Step" = j."Step"
            WHERE j."Id" = @id AND j."Status" = '{EvaluationStatus.Running}'
            """);
        cmd.Parameters.AddWithValue("id", evaluationId);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        return new RunningEvaluation(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.IsDBNull(7) ? null : r.GetString(7),
            r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6));
    }

    /// <summary>Stores the results and marks the job succeeded, in one transaction; false (nothing written) when the job
    /// is no longer running.</summary>
    public bool Succeed(long evaluationId, long runId, long step, IReadOnlyList<TaskResult> results)
    {
        using var conn = db.OpenConnection();
        using var tx = conn.BeginTransaction();
        using (var done = new NpgsqlCommand($"""
            UPDATE hc.evaluation_jobs SET "Status" = '{EvaluationStatus.Succeeded}', "FinishedAt" = now()
            WHERE "Id" = @id AND "Status" = '{EvaluationStatus.Running}'
            """, conn, tx))
        {
            done.Parameters.AddWithValue("id", evaluationId);
            if (done.ExecuteNonQuery() == 0) return false;
        }
        EvaluationResults.Insert(conn, runId, step, results, fillGapsOnly: false);
        tx.Commit();
        return true;
    }

    /// <summary>running -> failed with <paramref name="reason"/> (no change for a job that is not running).</summary>
    public async Task FailAsync(long evaluationId, string reason, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            UPDATE hc.evaluation_jobs SET "Status" = '{EvaluationStatus.Failed}', "FailureReason" = @reason, "FinishedAt" = now()
            WHERE "Id" = @id AND "Status" = '{EvaluationStatus.Running}'
            """);
        cmd.Parameters.AddWithValue("id", evaluationId);
        cmd.Parameters.AddWithValue("reason", reason);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
