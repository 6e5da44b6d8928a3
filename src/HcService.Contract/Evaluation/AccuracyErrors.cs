using HcService.Contract.Analysis;

namespace HcService.Contract.Evaluation;

/// <summary>One stored evaluation value: a task's metric at a checkpoint step (the "items" metric is the item count).</summary>
public readonly record struct StoredScore(long Step, string Task, string Metric, double Value);

/// <summary>Standard errors of stored accuracies (docs/hc-math.md section 10.3): binomial for a task's acc and acc_norm
/// from its item count, and for the downstream average the error of a mean of independent tasks.</summary>
public static class AccuracyErrors
{
    /// <summary>The standard error of every accuracy in <paramref name="rows"/> (one run's), keyed by (step, task,
    /// metric); null where the item count is missing or below two, and for the average when any of its tasks has none.</summary>
    public static Dictionary<(long Step, string Task, string Metric), double?> Of(IEnumerable<StoredScore> rows)
    {
        var list = rows.ToList();
        var items = list.Where(r => r.Metric == EvalMetrics.Items).ToDictionary(r => (r.Step, r.Task), r => (int)r.Value);
        var errors = new Dictionary<(long, string, string), double?>();
        foreach (var r in list.Where(r => r.Metric != EvalMetrics.Items && r.Task != EvalMetrics.Average))
            errors[(r.Step, r.Task, r.Metric)] = items.TryGetValue((r.Step, r.Task), out var n) ? SeedStatistics.AccuracyStderr(r.Value, n) : null;
        foreach (var r in list.Where(r => r.Task == EvalMetrics.Average && r.Metric != EvalMetrics.Items))
            errors[(r.Step, r.Task, r.Metric)] = SeedStatistics.MeanStderr(EvalMetrics.PaperAverageTasks
                .Select(t => errors.GetValueOrDefault((r.Step, t.Task, t.Metric))).ToList());
        return errors;
    }
}
