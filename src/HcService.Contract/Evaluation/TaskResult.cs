namespace HcService.Contract.Evaluation;

/// <summary>
/// One task's scores. The service stores them per (run, step, task, metric), so task and metric names are stable:
/// see <see cref="EvalMetrics"/>. Values are fractions in [0, 1] (lm-eval's convention; papers print percent).
/// </summary>
/// <param name="Task">The task name of the spec ("arc_easy", ...).</param>
/// <param name="Metrics">Metric name -> value: "acc" always, "acc_norm" unless the task uses partial scoring.</param>
/// <param name="Items">Items scored.</param>
/// <param name="TruncatedRequests">Requests whose context + continuation exceeded the model's sequence length and lost
/// tokens on the left (lm-eval truncates the same way); nonzero means the model saw less than the whole prompt.</param>
public sealed record TaskResult(string Task, IReadOnlyDictionary<string, double> Metrics, int Items, int TruncatedRequests = 0);

/// <summary>Metric names, and the paper's downstream average.</summary>
public static class EvalMetrics
{
    /// <summary>Accuracy: the choice with the highest summed log-likelihood is the prediction (first one on ties).</summary>
    public const string Acc = "acc";

    /// <summary>lm-eval's acc_norm: the highest log-likelihood divided by the choice's length in characters
    /// (Unicode code points of the choice text without the leading space: Python <c>len(choice)</c>), not in tokens
    /// and not in UTF-8 bytes (lm-eval calls that variant acc_bytes). The two agree on ASCII text, which is nearly
    /// all of these benchmarks.</summary>
    public const string AccNorm = "acc_norm";

    /// <summary>The name under which <see cref="PaperAverage"/> is stored (task "average").</summary>
    public const string Average = "average";
    /// <summary>The items a task scored, stored with its metrics.</summary>
    public const string Items = "items";

    /// <summary>
    /// The tasks of the downstream average, and the metric used for each: acc_norm where lm-eval reports it
    /// (ARC, HellaSwag, PIQA, SciQ, OpenBookQA), acc where lm-eval reports only acc (COPA, WinoGrande).
    /// These are the 7 of docs/hc-math.md section 9.2, the paper's "downstream avg" column (ARC-Challenge is reported on its
    /// own, the paper's +6 points); the list lives in this one place.
    /// </summary>
    public static readonly IReadOnlyList<(string Task, string Metric)> PaperAverageTasks =
    [
        ("arc_easy", AccNorm), ("hellaswag", AccNorm), ("piqa", AccNorm),
        ("sciq", AccNorm), ("openbookqa", AccNorm), ("copa", Acc), ("winogrande", Acc),
    ];

    /// <summary>The unweighted mean over <see cref="PaperAverageTasks"/> of each task's metric (a fraction). Throws,
    /// naming what is missing, unless every one of those tasks is in <paramref name="results"/> with its metric.</summary>
    public static double PaperAverage(IEnumerable<TaskResult> results)
    {
        var byTask = results.GroupBy(r => r.Task).ToDictionary(g => g.Key, g => g.Last());
        var missing = PaperAverageTasks.Where(t => !byTask.TryGetValue(t.Task, out var r) || !r.Metrics.ContainsKey(t.Metric))
            .Select(t => $"{t.Task}.{t.Metric}").ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"the downstream average needs {string.Join(", ", PaperAverageTasks.Select(t => $"{t.Task}.{t.Metric}"))}; missing: {string.Join(", ", missing)}");
        return PaperAverageTasks.Average(t => byTask[t.Task].Metrics[t.Metric]);
    }
}
