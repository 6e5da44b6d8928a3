using HcService.Contract.Metrics;
using HcService.Api.Auth;
using HcService.Api.Runs;
using HcService.Contract.Analysis;
using HcService.Contract.Config;
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

/// <summary>A downstream metric of both runs at their latest evaluated step, and the difference (candidate - baseline).</summary>
public sealed record TaskDelta(string Task, string Metric, long BaselineStep, double Baseline, long CandidateStep, double Candidate, double Delta);

public sealed record CandidateComparison(RunSummary Run, IReadOnlyList<CurveComparison> Validation, CurveComparison? Training, IReadOnlyList<TaskDelta> Tasks);

/// <summary>GET /api/comparisons: every candidate against the baseline, aligned by tokens.</summary>
public sealed record Comparison(RunSummary Baseline, IReadOnlyList<CandidateComparison> Candidates, string PlotUrl);

/// <summary>
/// Comparisons answer the paper's questions from stored results: lower validation loss at equal tokens, the same loss
/// with fewer tokens (speedup), downstream accuracy deltas; and a loss-vs-tokens plot (SVG) of all the runs.
/// Training loss is smoothed (a centred window of 5% of the baseline's tokens) before the speedup is read off it;
/// validation curves are used as measured.
/// </summary>
public static class ComparisonsApi
{
    public static void MapComparisons(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/comparisons").WithTags("Comparisons").RequireScope(Scopes.Read);
        g.MapGet("/", Compare).WithSummary("Two or more runs aligned by tokens: loss deltas per validation set, speedup, downstream deltas");
        g.MapGet("/plot.svg", Plot).WithSummary("Loss vs tokens of the runs (SVG); metric = train/loss or val/<set>/loss")
            .Produces(200, contentType: "image/svg+xml");
    }

    static async Task<Results<Ok<Comparison>, ValidationProblem>> Compare(HcDbContext db, NpgsqlDataSource data, string? runs, long? baseline, CancellationToken ct)
    {
        var (ids, error) = ParseRuns(runs, baseline);
        if (error is not null) return Invalid(error);
        var found = await db.Runs.AsNoTracking().Where(r => ids.Contains(r.Id)).ToDictionaryAsync(r => r.Id, ct);
        if (ids.FirstOrDefault(id => !found.ContainsKey(id)) is var missing and > 0) return Invalid(new("runs", missing, "ids of existing runs"));
        var baseId = baseline ?? ids[0];
        var evaluations = await db.Evaluations.AsNoTracking().Where(e => ids.Contains(e.RunId)).ToListAsync(ct);

        var baseCurves = await Curves(data, baseId, ct);
        var candidates = new List<CandidateComparison>();
        foreach (var id in ids.Where(i => i != baseId))
        {
            var curves = await Curves(data, id, ct);
            var label = Label(found[id]);
            var validation = baseCurves.Where(c => MetricRegistry.IsValidationLoss(c.Key, out _) && curves.ContainsKey(c.Key) && c.Value.Points.Count > 1 && curves[c.Key].Points.Count > 1)
                .Select(c => CompareCurves(c.Key, c.Value, curves[c.Key], Label(found[baseId]), label, Smoothing.None)).ToList();
            CurveComparison? training = null;
            if (baseCurves.TryGetValue(MetricRegistry.TrainLoss.Name, out var bt) && curves.TryGetValue(MetricRegistry.TrainLoss.Name, out var ctl) && bt.Points.Count > 1 && ctl.Points.Count > 1)
                training = CompareCurves(MetricRegistry.TrainLoss.Name, bt, ctl, Label(found[baseId]), label, Smoothing.Window(0.05 * bt.Last.Tokens));
            candidates.Add(new CandidateComparison(RunSummary.Of(found[id]), validation, training, TaskDeltas(evaluations, baseId, id)));
        }
        return TypedResults.Ok(new Comparison(RunSummary.Of(found[baseId]), candidates, $"/api/comparisons/plot.svg?runs={string.Join(',', ids)}"));
    }

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
        var svg = SvgLineChart.Render(series, new LineChartOptions(Title: $"{metric} vs tokens", YLabel: metric));
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

    /// <summary>Each downstream (task, metric) both runs have, at each run's latest evaluated step.</summary>
    static List<TaskDelta> TaskDeltas(List<EvaluationResult> all, long baseId, long id)
    {
        static Dictionary<(string, string), EvaluationResult> Latest(IEnumerable<EvaluationResult> rs) => rs.Where(r => r.Metric != "items")
            .GroupBy(r => (r.Task, r.Metric)).ToDictionary(g => g.Key, g => g.MaxBy(r => r.Step)!);
        var b = Latest(all.Where(e => e.RunId == baseId));
        var c = Latest(all.Where(e => e.RunId == id));
        return b.Keys.Intersect(c.Keys).OrderBy(k => k.Item1 == "average" ? "~" : k.Item1, StringComparer.Ordinal).ThenBy(k => k.Item2, StringComparer.Ordinal)
            .Select(k => new TaskDelta(k.Item1, k.Item2, b[k].Step, b[k].Value, c[k].Step, c[k].Value, c[k].Value - b[k].Value)).ToList();
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

    static string Label(Run r) => $"{r.Name} (run {r.Id}, {r.Connection}{(r.Connection.EndsWith("hc", StringComparison.Ordinal) ? $" x{r.Rate}" : "")})";

    static (List<long> Ids, ConfigError? Error) ParseRuns(string? runs, long? baseline)
    {
        var parts = (runs ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ids = new List<long>();
        foreach (var p in parts)
        {
            if (!long.TryParse(p, out var id) || id < 1) return (ids, new("runs", runs, "a comma-separated list of 2 to 20 run ids, e.g. runs=1,2"));
            if (!ids.Contains(id)) ids.Add(id);
        }
        if (ids.Count is < 2 or > 20) return (ids, new("runs", runs, "a comma-separated list of 2 to 20 run ids, e.g. runs=1,2"));
        if (baseline is { } b && !ids.Contains(b)) return (ids, new("baseline", baseline, "one of the runs"));
        return (ids, null);
    }

    static ValidationProblem Invalid(ConfigError e) =>
        Problems.Invalid([e], "The comparison request is invalid");
}
