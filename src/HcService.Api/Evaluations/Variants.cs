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
/// <param name="Runs">One run per seed, in seed order (the lowest id where a seed was run twice): the runs that are paired.</param>
/// <param name="Seeds">Their seeds, aligned with <paramref name="Runs"/>.</param>
/// <param name="Repeats">Further runs of a seed already in <paramref name="Runs"/> (not paired, not averaged).</param>
public sealed record VariantInfo(string Label, string Connection, int Rate, IReadOnlyList<long> Runs, IReadOnlyList<long> Seeds, IReadOnlyList<long> Repeats);

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
                var perSeed = ordered.GroupBy(m => m.Seed).Select(s => s.First()).ToList();
                return new Variant(new VariantInfo(label, first.Connection, first.Rate, perSeed.Select(m => m.Run.Id).ToList(), perSeed.Select(m => m.Seed).ToList(),
                    ordered.Except(perSeed).Select(m => m.Run.Id).ToList()), ordered, g.First().Plan);
            }).ToList();
        var baseline = variants.First(v => v.Members.Any(m => m.Run.Id == baselineRunId));
        return new Variants { Baseline = baseline, Candidates = variants.Where(v => v != baseline).ToList() };
    }

    static JobPlan? PlanOf(Run r)
    {
        try { return JobPlan.Stored(r.Plan, JobSpec.Parse(r.Spec), DeviceQueues.DeviceOf(r.Queue)); }
        catch (Exception e) when (e is HcService.Contract.Config.ConfigException or System.Text.Json.JsonException or InvalidDataException) { return null; }
    }

    /// <summary>Every accuracy of each run at its latest evaluated step, with its standard error, keyed "task metric" (for
    /// seed-paired scores, which pair only scores of the same step).</summary>
    public static Dictionary<long, (long Step, Dictionary<string, double> Scores, Dictionary<string, double?> Errors)> LatestScores(IEnumerable<EvaluationResult> evaluations) =>
        evaluations.GroupBy(e => e.RunId).ToDictionary(r => r.Key, r =>
        {
            var errors = AccuracyErrors.Of(r.Select(e => new StoredScore(e.Step, e.Task, e.Metric, e.Value)));
            var step = r.Max(e => e.Step);
            var latest = r.Where(e => e.Step == step && e.Metric != EvalMetrics.Items).ToDictionary(e => $"{e.Task} {e.Metric}");
            return (step, latest.ToDictionary(l => l.Key, l => l.Value.Value), latest.ToDictionary(l => l.Key, l => errors.GetValueOrDefault((step, l.Value.Task, l.Value.Metric))));
        });

    /// <summary>One run per seed (the lowest id where a seed was run twice), as the pairs use them.</summary>
    public static IReadOnlyList<Member> OnePerSeed(Variant v) => v.Members.GroupBy(m => m.Seed).Select(g => g.MinBy(m => m.Run.Id)!).ToList();

    /// <summary>A sentence for a candidate: confounded first, then each validation set's verdict (or why there is none:
    /// <paramref name="pairs"/>, the seeds both variants ran, is 0).</summary>
    public static string Verdict(IReadOnlyList<PlanDifference> confounds, IEnumerable<(string Set, PairedDifference Delta)> validation, int pairs)
    {
        var parts = validation.Select(v => $"{v.Set}: {v.Delta.Verdict}").ToList();
        var verdict = parts.Count > 0 ? string.Join("; ", parts)
            : pairs == 0 ? "no seed in common with the baseline: nothing to pair"
            : "no validation loss at a common token count yet";
        return confounds.Count == 0 ? verdict
            : $"confounded: the runs also differ in {string.Join(", ", confounds.Select(c => c.Field))}; {verdict}";
    }
}
