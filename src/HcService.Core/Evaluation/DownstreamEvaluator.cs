using HcService.Contract.Evaluation;
using System.Text.Json;
using System.Text.Json.Serialization;
using HcService.Contract.Data;
using HcService.Core.Model;

namespace HcService.Core.Evaluation;

/// <summary>Downstream zero-shot results of one checkpoint (or one in-loop evaluation): every task's metrics.</summary>
public sealed record EvaluationMetrics(long Step, long Tokens, IReadOnlyList<TaskResult> Results);

/// <summary>
/// The zero-shot evaluation of a model at one point: every task scored by <see cref="LogLikelihoodScorer"/>, plus the
/// paper's downstream average (task "average", metric "acc") when every task of it was evaluated. Used in the training
/// loop (every N tokens) and by evaluation jobs on stored checkpoints, so both give the same numbers.
/// </summary>
public sealed class DownstreamEvaluator(IReadOnlyList<EvalTask> tasks, ITextTokenizer tokenizer, int batchSize)
{
    /// <summary>Loads every task spec (errors name the field: evaluation.tasks[i]).</summary>
    public static IReadOnlyList<EvalTask> Load(string dataRoot, IReadOnlyList<EvalTaskSpec> specs, int? limit, string field = "evaluation.tasks")
    {
        var catalog = new EvalTasks(dataRoot);
        return [.. specs.Select((s, i) => catalog.Load(s with { Limit = s.Limit ?? limit }, $"{field}[{i}]"))];
    }

    public IReadOnlyList<TaskResult> Evaluate(LanguageModel model, Action<string>? log = null)
    {
        var scorer = new LogLikelihoodScorer(model, tokenizer, batchSize);
        var results = new List<TaskResult>();
        foreach (var task in tasks)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var r = scorer.Evaluate(task);
            results.Add(r);
            log?.Invoke($"eval {task.Name}: {string.Join(", ", r.Metrics.Select(m => $"{m.Key} {m.Value:F4}"))} ({r.Items} items, {sw.Elapsed.TotalSeconds:F1} s)");
        }
        if (EvalMetrics.PaperAverageTasks.All(t => results.Any(r => r.Task == t.Task && r.Metrics.ContainsKey(t.Metric))))
            results.Add(new TaskResult(EvalMetrics.Average, new Dictionary<string, double> { [EvalMetrics.Acc] = EvalMetrics.PaperAverage(results) },
                results.Where(r => EvalMetrics.PaperAverageTasks.Any(t => t.Task == r.Task)).Sum(r => r.Items)));
        return results;
    }
}
