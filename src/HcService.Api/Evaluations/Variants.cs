using HcService.Contract.Analysis;
using HcService.Contract.Evaluation;
using HcService.Contract.Jobs;
using HcService.Store;

namespace HcService.Api.Evaluations;

/// <summary>A variant: runs whose resolved plans are equal but for their name, tags, seed and checkpoint cadence (the seeds
/// of one configuration).</summary>
/// <param name="Label">The first run's name without its "-s&lt;seed&gt;" suffix.</param>
/// <param name="Connection">The connection type, as runs name it.</param>
/// <param name="Rate">The expansion rate.</param>
/// <param name="Runs">Its runs' ids, in seed order.</param>
/// <param name="Seeds">Their seeds.</param>
public sealed record VariantInfo(string Label, string Connection, int Rate, IReadOnlyList<long> Runs, IReadOnlyList<long> Seeds);

/// <summary>Runs grouped into variants, the baseline's first.</summary>
sealed class Variants
{
    public sealed record Member(Run Run, JobPlan? Plan, long Seed);

    public sealed record Variant(VariantInfo Info, IReadOnlyList<Member> Members, JobPlan? Plan)
    {
        /// <summary>Fields besides the connection and the seed in which this variant's plan differs from the baseline's
        /// (a run whose plan cannot be read is confounded with everything).</summary>
        public IReadOnlyList<PlanDifference> ConfoundsAgainst(Variant baseline) =>
            Plan is null || baseline.Plan is null ? [new PlanDifference("plan", baseline.Plan is null ? null : "readable", Plan is null ? null : "readable")]
            : PlanDifferences.Confounds(baseline.Plan, Plan);
    }

    public required Variant Baseline { get; init; }
    public required IReadOnlyList<Variant> Candidates { get; init; }

    /// <summary>The variants of <paramref name="runs"/>, the one holding <paramref name="baselineRunId"/> first.</summary>
    public static Variants Of(IEnumerable<Run> runs, long baselineRunId)
    {
        var members = runs.OrderBy(r => r.Id).Select(r =>
        {
            var plan = PlanOf(r);
            return new Member(r, plan, plan?.Training.Seed ?? -1);
        }).ToList();
        var variants = members.GroupBy(m => m.Plan is { } p ? PlanDifferences.VariantKey(p) : $"unreadable plan of run {m.Run.Id}")
            .Select(g =>
            {
                var ordered = g.OrderBy(m => m.Seed).ThenBy(m => m.Run.Id).ToList();
                var first = g.First().Run;
                var label = System.Text.RegularExpressions.Regex.Replace(first.Name, $"-s{g.First().Seed}$", "");
                return new Variant(new VariantInfo(label, first.Connection, first.Rate, ordered.Select(m => m.Run.Id).ToList(), ordered.Select(m => m.Seed).ToList()),
                    ordered, g.First().Plan);
            }).ToList();
        var baseline = variants.First(v => v.Members.Any(m => m.Run.Id == baselineRunId));
        return new Variants { Baseline = baseline, Candidates = variants.Where(v => v != baseline).ToList() };
    }

    static JobPlan? PlanOf(Run r)
    {
        try { return JobPlan.Stored(r.Plan, JobSpec.Parse(r.Spec), DeviceQueues.DeviceOf(r.Queue)); }
        catch (Exception e) when (e is HcService.Contract.Config.ConfigException or System.Text.Json.JsonException or InvalidDataException) { return null; }
    }

    /// <summary>Every accuracy of each run at its latest evaluated step and its standard error, keyed "task metric" (for
    /// seed-paired scores).</summary>
    public static Dictionary<long, (Dictionary<string, double> Scores, Dictionary<string, double?> Errors)> LatestScores(IEnumerable<EvaluationResult> evaluations) =>
        evaluations.GroupBy(e => e.RunId).ToDictionary(r => r.Key, r =>
        {
            var errors = AccuracyErrors.Of(r.Select(e => new StoredScore(e.Step, e.Task, e.Metric, e.Value)));
            var latest = r.Where(e => e.Metric != EvalMetrics.Items).GroupBy(e => $"{e.Task} {e.Metric}").ToDictionary(g => g.Key, g => g.MaxBy(e => e.Step)!);
            return (latest.ToDictionary(l => l.Key, l => l.Value.Value), latest.ToDictionary(l => l.Key, l => errors.GetValueOrDefault((l.Value.Step, l.Value.Task, l.Value.Metric))));
        });

    /// <summary>A sentence for a candidate: confounded first, then each validation set's verdict.</summary>
    public static string Verdict(IReadOnlyList<PlanDifference> confounds, IEnumerable<(string Set, PairedDifference Delta)> validation)
    {
        var parts = validation.Select(v => $"{v.Set}: {v.Delta.Verdict}").ToList();
        var verdict = parts.Count == 0 ? "no validation loss in common yet" : string.Join("; ", parts);
        return confounds.Count == 0 ? verdict
            : $"confounded: the runs also differ in {string.Join(", ", confounds.Select(c => c.Field))}; {verdict}";
    }
}
