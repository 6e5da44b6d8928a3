using HcService.Contract.Evaluation;
using HcService.Core.Evaluation;
using Npgsql;

namespace HcService.Cli.Service;

/// <summary>Downstream results into hc.evaluation_results, one row per (run, step, task, metric), upserted (an
/// evaluation of the same checkpoint again replaces its numbers). "items" is stored as a metric too.</summary>
static class EvaluationStore
{
    /// <param name="fillGapsOnly">Keep stored numbers (results an earlier attempt left, recovered from its journal).</param>
    public static void Write(NpgsqlConnection conn, long runId, long step, IReadOnlyList<TaskResult> results, string condition, Action<NpgsqlCommand> bind,
        bool fillGapsOnly = false)
    {
        var rows = results.SelectMany(r => r.Metrics.Select(m => (Task: r.Task, Metric: m.Key, Value: m.Value)).Append((Task: r.Task, Metric: "items", Value: (double)r.Items))).ToList();
        using var cmd = new NpgsqlCommand($"""
            INSERT INTO hc.evaluation_results ("RunId", "Step", "Task", "Metric", "Value", "CreatedAt")
            SELECT @run, @step, t, m, v, now() FROM unnest(@tasks, @metrics, @values) AS x(t, m, v) WHERE {condition}
            ON CONFLICT ("RunId", "Step", "Task", "Metric") {(fillGapsOnly ? "DO NOTHING" : """DO UPDATE SET "Value" = excluded."Value", "CreatedAt" = excluded."CreatedAt" """)}
            """, conn);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("step", step);
        cmd.Parameters.AddWithValue("tasks", rows.Select(r => r.Task).ToArray());
        cmd.Parameters.AddWithValue("metrics", rows.Select(r => r.Metric).ToArray());
        cmd.Parameters.AddWithValue("values", rows.Select(r => r.Value).ToArray());
        bind(cmd);
        cmd.ExecuteNonQuery();
    }
}
