using HcService.Contract.Metrics;
using HcService.Api.Auth;
using HcService.Api.Runs;
using HcService.Contract.Analysis;
using HcService.Plots;
using HcService.Contract.Config;
using HcService.Contract.Evaluation;
using HcService.Contract.Jobs;
using HcService.Store;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace HcService.Api.Evaluations;

/// <summary>One loss curve of a candidate against the baseline's: the delta at equal tokens (candidate - baseline;
/// negative is better), and the paper's speedup (tokens the candidate needed to reach the baseline's final loss).</summary>
public sealed record CurveComparison(string Metric, double BaselineFinal, double CandidateFinal, double? LastCommonTokens, double? DeltaAtLastCommon,
    IReadOnlyList<DeltaPoint> Deltas, SpeedupResult Speedup);

/// <summary>A downstream metric of both runs at their latest evaluated step, each with its standard error (binomial from
/// the task's item count, as lm-evaluation-harness reports acc_stderr), and the difference (candidate - baseline) with its
/// standard error; <see cref="Noise"/>: the difference lies within two of them.</summary>
public sealed record TaskDelta(string Task, string Metric, long BaselineStep, double Baseline, double? BaselineStderr, long CandidateStep, double Candidate,
    double? CandidateStderr, double Delta, double? DeltaStderr, bool Noise);

public sealed record CandidateComparison(RunSummary Run, IReadOnlyList<CurveComparison> Validation, CurveComparison? Training, IReadOnlyList<TaskDelta> Tasks);

/// <summary>A candidate variant (its seeds) against the baseline variant, paired by seed: per loss curve, each variant's
/// mean and std, the paired delta with its 95% interval and verdict, and the speedup over seeds; downstream accuracies
/// likewise; the plan fields besides the connection and the seed in which the two differ (confounds); a verdict.</summary>
public sealed record VariantComparison(VariantInfo Variant, IReadOnlyList<SeededCurve> Curves, IReadOnlyList<SeededScore> Downstream,
    IReadOnlyList<PlanDifference> Confounds, bool Confounded, string Verdict);

/// <summary>GET /api/comparisons: every candidate run against the baseline run, aligned by tokens; and the runs grouped
/// into variants (equal plans but for the seed), every candidate variant against the baseline's, paired by seed.</summary>
public sealed record Comparison(RunSummary Baseline, IReadOnlyList<CandidateComparison> Candidates, VariantInfo BaselineVariant,
    IReadOnlyList<VariantComparison> Variants, string PlotUrl);

/// <summary>
/// Comparisons answer the paper's questions from stored results: lower validation loss at equal tokens, the same loss
/// with fewer tokens (speedup), downstream accuracy deltas; and a loss-vs-tokens plot (SVG) of all the runs.
/// Training loss is smoothed (a centred window of 5% of the baseline's tokens) before the speedup is read off it;
/// validation curves are used as measured.
/// </summary>
public static class ComparisonsApi
{
    /// <summary>Runs one comparison takes: every run of the largest group.</summary>
    public const int MaxRuns = GroupsApi.MaxRuns;

    public static void MapComparisons(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/comparisons").WithTags("Comparisons").RequireScope(Scopes.Read);
        g.MapGet("/", Compare).WithName("compareRuns").WithSummary("Two or more runs aligned by tokens: loss deltas per validation set, speedup, downstream deltas with standard errors; and by variant over seeds: mean, std, seed-paired deltas with 95% intervals, verdicts, confounds");
        g.MapGet("/plot.svg", Plot).WithName("plotComparison").WithSummary("Loss vs tokens of the runs (SVG); metric = train/loss or val/<set>/loss")
            .Produces(200, contentType: "image/svg+xml");
    }

    /// <param name="runs">2 to 64 distinct run ids, comma-separated, e.g. 1,2,3,4.</param>
    /// <param name="baseline">The baseline, one of the runs; absent: the first.</param>
    static async Task<Results<Ok<Comparison>, ValidationProblem>> Compare(HcDbContext db, NpgsqlDataSource data, string? runs, long? baseline, CancellationToken ct)
    {
        var (ids, error) = ParseRuns(runs, baseline);
        if (error is not null) return Invalid(error);
        var found = await db.Runs.AsNoTracking().Where(r => ids.Contains(r.Id)).ToDictionaryAsync(r => r.Id, ct);
        if (ids.FirstOrDefault(id => !found.ContainsKey(id)) is var missing and > 0) return Invalid(new("runs", missing, "ids of existing runs"));
        var baseId = baseline ?? ids[0];
        var evaluations = await db.Evaluations.AsNoTracking().Where(e => ids.Contains(e.RunId)).ToListAsync(ct);

        var curvesOf = new Dictionary<long, Dictionary<string, LossCurve>>();
        foreach (var id in ids) curvesOf[id] = await Curves(data, id, ct);
        var baseCurves = curvesOf[baseId];
        var candidates = new List<CandidateComparison>();
        foreach (var id in ids.Where(i => i != baseId))
        {
            var curves = curvesOf[id];
            var label = Label(found[id]);
            var validation = baseCurves.Where(c => MetricRegistry.IsValidationLoss(c.Key, out _) && curves.ContainsKey(c.Key) && c.Value.Points.Count > 1 && curves[c.Key].Points.Count > 1)
                .Select(c => CompareCurves(c.Key, c.Value, curves[c.Key], Label(found[baseId]), label, Smoothing.None)).ToList();
            CurveComparison? training = null;
            if (baseCurves.TryGetValue(MetricRegistry.TrainLoss.Name, out var bt) && curves.TryGetValue(MetricRegistry.TrainLoss.Name, out var ctl) && bt.Points.Count > 1 && ctl.Points.Count > 1)
                training = CompareCurves(MetricRegistry.TrainLoss.Name, bt, ctl, Label(found[baseId]), label, Smoothing.Window(0.05 * bt.Last.Tokens));
            candidates.Add(new CandidateComparison(RunSummary.Of(found[id]), validation, training, TaskDeltas(evaluations, baseId, id)));
        }
        // By variant, paired by seed: training loss smoothed as above (5% of the pair's baseline tokens), validation as measured.
        var variants = Variants.Of(found.Values, baseId);
        var scores = Variants.LatestScores(evaluations);
        List<SeedRun> SeedRuns(Variants.Variant v) => v.Members.Select(m => scores.TryGetValue(m.Run.Id, out var s)
            ? new SeedRun(m.Run.Id, m.Seed, curvesOf[m.Run.Id], s.Scores, s.Errors, s.Step)
            : new SeedRun(m.Run.Id, m.Seed, curvesOf[m.Run.Id])).ToList();
        var baseRuns = SeedRuns(variants.Baseline);
        var variantComparisons = variants.Candidates.Select(v =>
        {
            var candidateRuns = SeedRuns(v);
            var curves = SeedComparison.Curves(baseRuns, candidateRuns,
                (metric, baselineCurve) => metric == MetricRegistry.TrainLoss.Name ? Smoothing.Window(0.05 * baselineCurve.Last.Tokens) : Smoothing.None);
            var confounds = v.ConfoundsAgainst(variants.Baseline);
            return new VariantComparison(v.Info, curves, SeedComparison.Scores(baseRuns, candidateRuns), confounds, confounds.Count > 0,
                Variants.Verdict(confounds, curves.Where(c => MetricRegistry.IsValidationLoss(c.Metric, out _)).Select(c => (c.Metric, c.Delta)),
                    SeedComparison.Pairs(baseRuns, candidateRuns).Count));
        }).ToList();
        return TypedResults.Ok(new Comparison(RunSummary.Of(found[baseId]), candidates, variants.Baseline.Info, variantComparisons,
            $"/api/comparisons/plot.svg?runs={string.Join(',', ids)}"));
    }

    /// <param name="runs">2 to 64 distinct run ids, comma-separated.</param>
    /// <param name="metric">The loss drawn: train/loss (default, smoothed) or val/&lt;set&gt;/loss.</param>
    static async Task<Results<ContentHttpResult, ValidationProblem>> Plot(HcDbContext db, NpgsqlDataSource data, string? runs, string? metric, CancellationToken ct)
    {
        var (ids, error) = ParseRuns(runs, null);
        if (error is not null) return Invalid(error);
        metric ??= MetricRegistry.TrainLoss.Name;
        if (metric.Length > 200) return Invalid(new("metric", metric[..80] + "...", "a metric name such as train/loss or val/<set>/loss"));
        var found = await db.Runs.AsNoTracking().Where(r => ids.Contains(r.Id)).ToDictionaryAsync(r => r.Id, ct);
        var series = new List<LossCurve>();
        foreach (var id in ids.Where(found.ContainsKey))
        {
            var points = await MetricQueries.SeriesAsync(data, id, metric, null, null, 500, ct);
            if (Curve(Label(found[id]), points) is { } curve) series.Add(metric == MetricRegistry.TrainLoss.Name ? Smoothing.Window(0.02 * curve.Last.Tokens).Apply(curve) : curve);
        }
        if (series.Count == 0) return Invalid(new("metric", metric, "a metric the runs have, e.g. train/loss or val/<set>/loss"));
        var svg = LineChart.Svg(series, new LineChartOptions(Title: $"{metric} vs tokens", YLabel: LineChart.AxisLabel(metric)));
        return TypedResults.Content(svg, "image/svg+xml");
    }

    static CurveComparison CompareCurves(string metric, LossCurve baseline, LossCurve candidate, string baseLabel, string label, Smoothing smoothing)
    {
        var b = new LossCurve(baseLabel, baseline.Points);
        var c = new LossCurve(label, candidate.Points);
        var deltas = LossCurves.Deltas(b, c, smoothing);
        // At most 50 points of the delta curve in the response (the plot route has the full curves).
        var step = Math.Max(1, deltas.Points.Count / 50);
        var thinned = deltas.Points.Where((_, i) => i % step == 0 || i == deltas.Points.Count - 1).ToList();
        return new CurveComparison(metric, smoothing.Apply(b).Last.Loss, smoothing.Apply(c).Last.Loss, deltas.LastCommonTokens, deltas.DeltaAtLastCommon,
            thinned, LossCurves.Speedup(b, c, smoothing));
    }

    /// <summary>Each downstream (task, metric) both runs have, at each run's latest evaluated step, with standard errors.</summary>
    static List<TaskDelta> TaskDeltas(List<EvaluationResult> all, long baseId, long id)
    {
        static Dictionary<(string, string), EvaluationResult> Latest(IEnumerable<EvaluationResult> rs) => rs.Where(r => r.Metric != EvalMetrics.Items)
            .GroupBy(r => (r.Task, r.Metric)).ToDictionary(g => g.Key, g => g.MaxBy(r => r.Step)!);
        static Dictionary<(long, string, string), double?> Errors(IEnumerable<EvaluationResult> rs) =>
            AccuracyErrors.Of(rs.Select(r => new StoredScore(r.Step, r.Task, r.Metric, r.Value)));
        var (b, c) = (Latest(all.Where(e => e.RunId == baseId)), Latest(all.Where(e => e.RunId == id)));
        var (be, ce) = (Errors(all.Where(e => e.RunId == baseId)), Errors(all.Where(e => e.RunId == id)));
        return b.Keys.Intersect(c.Keys).OrderBy(k => k.Item1 == EvalMetrics.Average ? "~" : k.Item1, StringComparer.Ordinal).ThenBy(k => k.Item2, StringComparer.Ordinal)
            .Select(k =>
            {
                var (bs, cs) = (be.GetValueOrDefault((b[k].Step, k.Item1, k.Item2)), ce.GetValueOrDefault((c[k].Step, k.Item1, k.Item2)));
                var delta = c[k].Value - b[k].Value;
                var (se, noise) = SeedStatistics.DifferenceStderr(delta, bs, cs);
                return new TaskDelta(k.Item1, k.Item2, b[k].Step, b[k].Value, bs, c[k].Step, c[k].Value, cs, delta, se, noise);
            }).ToList();
    }

    /// <summary>The run's loss curves by tokens: train/loss (2,000 points) and every val/&lt;set&gt;/loss.</summary>
    static async Task<Dictionary<string, LossCurve>> Curves(NpgsqlDataSource data, long id, CancellationToken ct)
    {
        var curves = new Dictionary<string, LossCurve>(StringComparer.Ordinal);
        foreach (var name in await MetricQueries.NamesAsync(data, id, ct))
        {
            if (name != MetricRegistry.TrainLoss.Name && !MetricRegistry.IsValidationLoss(name, out _)) continue;
            if (Curve(name, await MetricQueries.SeriesAsync(data, id, name, null, null, 2000, ct)) is { } curve) curves[name] = curve;
        }
        return curves;
    }

    /// <summary>Finite points with strictly increasing tokens (the validation at step 0 has 0 tokens and is kept).</summary>
    static LossCurve? Curve(string name, IReadOnlyList<MetricValue> points)
    {
        var clean = new List<LossPoint>();
        foreach (var p in points.Where(p => double.IsFinite(p.Value)))
            if (clean.Count == 0 || p.Tokens > clean[^1].Tokens) clean.Add(new LossPoint(p.Tokens, p.Value));
        return clean.Count > 0 ? new LossCurve(name, clean) : null;
    }

    static string Label(Run r) => $"{r.Name} (run {r.Id}, {r.Connection}{r.Connection switch
    {
        "frac" => $" m{r.Rate}",
        "static-hc" or "dynamic-hc" or "mhc" or "mhc-lite" => $" x{r.Rate}",
        _ => "",
    }})";

    static (List<long> Ids, ConfigError? Error) ParseRuns(string? runs, long? baseline)
    {
        var parts = (runs ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ids = new List<long>();
        foreach (var p in parts)
        {
            if (!long.TryParse(p, out var id) || id < 1) return (ids, new("runs", runs, $"a comma-separated list of 2 to {MaxRuns} run ids, e.g. runs=1,2"));
            if (!ids.Contains(id)) ids.Add(id);
        }
        if (ids.Count is < 2 or > MaxRuns) return (ids, new("runs", runs, $"a comma-separated list of 2 to {MaxRuns} run ids, e.g. runs=1,2"));
        if (baseline is { } b && !ids.Contains(b)) return (ids, new("baseline", baseline, "one of the runs"));
        return (ids, null);
    }

    static ValidationProblem Invalid(ConfigError e) => Problems.InvalidQuery([e]);
}
