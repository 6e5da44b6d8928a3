using HcService.Contract.Evaluation;
using Npgsql;

namespace HcService.Store.Runs;

/// <summary>One metric value of one step of a run.</summary>
public readonly record struct PointValue(string Name, long Step, long Tokens, double Value);

/// <summary>A checkpoint file as the run store records it (<paramref name="Location"/> relative to the checkpoint store).</summary>
public sealed record CheckpointRow(long Step, long Tokens, long Bytes, string Sha256, string Location);

/// <summary>The downstream results of one evaluation of a run at <paramref name="Step"/>.</summary>
public sealed record EvaluationRows(long Step, IReadOnlyList<TaskResult> Results);

/// <summary>What one attempt commits at once. "Recovered" rows were left by an earlier attempt (from its journal, or
/// checkpoint files found on disk): they fill gaps only; this attempt's own rows replace what is stored for their key.</summary>
public sealed record AttemptBatch
{
    public IReadOnlyList<PointValue> Points { get; init; } = [];
    public IReadOnlyList<PointValue> RecoveredPoints { get; init; } = [];
    public IReadOnlyList<CheckpointRow> Checkpoints { get; init; } = [];
    public IReadOnlyList<CheckpointRow> RecoveredCheckpoints { get; init; } = [];
    /// <summary>The checkpoint steps still on disk after retention: records of other steps are removed (null: unchanged).</summary>
    public long[]? KeptCheckpointSteps { get; init; }
    public IReadOnlyList<EvaluationRows> Evaluations { get; init; } = [];
    public IReadOnlyList<EvaluationRows> RecoveredEvaluations { get; init; } = [];
    /// <summary>The attempt's latest step and tokens (null: progress unchanged).</summary>
    public (long Step, long Tokens)? Progress { get; init; }
}

/// <summary>
/// The attempt-guarded writes of a training attempt: metric points, checkpoint records, in-loop evaluation results and
/// progress, in one transaction that first takes the run's row lock and checks that the attempt still holds the run
/// (<see cref="RunLifecycle.AttemptHoldsRun"/>). Holding the row lock while points are numbered makes their sequence
/// numbers follow the commit order of the run's writes, which the event stream's cursor relies on.
/// </summary>
public sealed class AttemptWriter(NpgsqlDataSource db, long runId, int attempt)
{
    const string ReplaceCheckpoint = """
        DO UPDATE SET "Tokens" = excluded."Tokens", "Bytes" = excluded."Bytes", "Sha256" = excluded."Sha256", "Location" = excluded."Location", "CreatedAt" = excluded."CreatedAt"
        """;
    const string ReplacePoint = """
        DO UPDATE SET "Value" = excluded."Value", "Tokens" = excluded."Tokens", "Time" = excluded."Time",
            -- A replayed step with the same value is not news; a new value is streamed again.
            "Seq" = CASE WHEN hc.metric_points."Value" IS DISTINCT FROM excluded."Value" THEN excluded."Seq" ELSE hc.metric_points."Seq" END
        """;

    /// <summary>Commits <paramref name="batch"/>; false (and nothing written) when the attempt no longer holds the run.</summary>
    public bool Commit(AttemptBatch batch)
    {
        using var conn = db.OpenConnection();
        using var tx = conn.BeginTransaction();
        // The run's row lock first: the points' sequence numbers are then drawn in the order the run's writes commit, so
        // an event stream reading "after number N" can never skip a point that commits late.
        using (var guard = Command(conn, $"""
            SELECT {RunLifecycle.HeldAtAttempt} FROM hc.runs WHERE "Id" = @run FOR NO KEY UPDATE
            """))
            if (guard.ExecuteScalar() is not true) return false;

        InsertPoints(conn, batch.RecoveredPoints, "DO NOTHING");
        InsertPoints(conn, batch.Points, ReplacePoint);
        foreach (var (c, recovered) in batch.Checkpoints.Select(c => (c, false)).Concat(batch.RecoveredCheckpoints.Select(c => (c, true))))
            Execute(conn, $"""
                INSERT INTO hc.checkpoints ("RunId", "Step", "Tokens", "Bytes", "Sha256", "Location", "CreatedAt")
                VALUES (@run, @step, @tokens, @bytes, @sha, @loc, now())
                ON CONFLICT ("RunId", "Step") {(recovered ? "DO NOTHING" : ReplaceCheckpoint)}
                """, cmd =>
            {
                cmd.Parameters.AddWithValue("step", c.Step);
                cmd.Parameters.AddWithValue("tokens", c.Tokens);
                cmd.Parameters.AddWithValue("bytes", c.Bytes);
                cmd.Parameters.AddWithValue("sha", c.Sha256);
                cmd.Parameters.AddWithValue("loc", c.Location);
            });
        if (batch.KeptCheckpointSteps is { } kept)
            // Retention removed older files: drop their records too, so that every listed checkpoint can be downloaded.
            Execute(conn, """DELETE FROM hc.checkpoints WHERE "RunId" = @run AND NOT ("Step" = ANY(@kept))""",
                cmd => cmd.Parameters.AddWithValue("kept", kept));
        foreach (var e in batch.Evaluations) EvaluationResults.Insert(conn, runId, e.Step, e.Results, fillGapsOnly: false);
        foreach (var e in batch.RecoveredEvaluations) EvaluationResults.Insert(conn, runId, e.Step, e.Results, fillGapsOnly: true);
        if (batch.Progress is var (step, tokens))
            Execute(conn, """UPDATE hc.runs SET "Step" = @step, "Tokens" = @tok, "UpdatedAt" = now() WHERE "Id" = @run""", cmd =>
            {
                cmd.Parameters.AddWithValue("step", step);
                cmd.Parameters.AddWithValue("tok", tokens);
            });
        // Wakes the event streams following this run, on commit.
        Execute(conn, "SELECT pg_notify('hc_run_metrics', @run::text)", _ => { });
        tx.Commit();
        return true;
    }

    void InsertPoints(NpgsqlConnection conn, IReadOnlyList<PointValue> points, string onConflict)
    {
        for (var from = 0; from < points.Count; from += 50_000)
        {
            var batch = points.Skip(from).Take(50_000).ToList();
            Execute(conn, $"""
                INSERT INTO hc.metric_points ("RunId", "Name", "Step", "Tokens", "Value", "Time")
                SELECT @run, n, s, t, v, now() FROM unnest(@names, @steps, @tokens, @values) AS x(n, s, t, v)
                ON CONFLICT ("RunId", "Name", "Step") {onConflict}
                """, cmd =>
            {
                cmd.Parameters.AddWithValue("names", batch.Select(b => b.Name).ToArray());
                cmd.Parameters.AddWithValue("steps", batch.Select(b => b.Step).ToArray());
                cmd.Parameters.AddWithValue("tokens", batch.Select(b => b.Tokens).ToArray());
                cmd.Parameters.AddWithValue("values", batch.Select(b => double.IsFinite(b.Value) ? b.Value : double.NaN).ToArray());
            });
        }
    }

    NpgsqlCommand Command(NpgsqlConnection conn, string sql)
    {
        var cmd = new NpgsqlCommand(sql, conn);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("attempt", attempt);
        return cmd;
    }

    void Execute(NpgsqlConnection conn, string sql, Action<NpgsqlCommand> bind)
    {
        using var cmd = Command(conn, sql);
        bind(cmd);
        cmd.ExecuteNonQuery();
    }
}

/// <summary>Downstream results into hc.evaluation_results, one row per (run, step, task, metric), upserted (an
/// evaluation of the same checkpoint again replaces its numbers). "items" is stored as a metric too. Callers write inside
/// a transaction that has checked their right to write (an attempt's guard, an evaluation job's state).</summary>
static class EvaluationResults
{
    /// <param name="fillGapsOnly">Keep stored numbers (results an earlier attempt left, recovered from its journal).</param>
    public static void Insert(NpgsqlConnection conn, long runId, long step, IReadOnlyList<TaskResult> results, bool fillGapsOnly)
    {
        var rows = results.SelectMany(r => r.Metrics.Select(m => (Task: r.Task, Metric: m.Key, Value: m.Value)).Append((Task: r.Task, Metric: EvalMetrics.Items, Value: (double)r.Items))).ToList();
        using var cmd = new NpgsqlCommand($"""
            INSERT INTO hc.evaluation_results ("RunId", "Step", "Task", "Metric", "Value", "CreatedAt")
            SELECT @run, @step, t, m, v, now() FROM unnest(@tasks, @metrics, @values) AS x(t, m, v)
            ON CONFLICT ("RunId", "Step", "Task", "Metric") {(fillGapsOnly ? "DO NOTHING" : """DO UPDATE SET "Value" = excluded."Value", "CreatedAt" = excluded."CreatedAt" """)}
            """, conn);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("step", step);
        cmd.Parameters.AddWithValue("tasks", rows.Select(r => r.Task).ToArray());
        cmd.Parameters.AddWithValue("metrics", rows.Select(r => r.Metric).ToArray());
        cmd.Parameters.AddWithValue("values", rows.Select(r => r.Value).ToArray());
        cmd.ExecuteNonQuery();
    }
}
