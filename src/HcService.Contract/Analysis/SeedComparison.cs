namespace HcService.Contract.Analysis;

/// <summary>One run of a variant in a seeded comparison: its seed, its loss curves by metric name, its scores
/// (downstream accuracies by "task metric", higher is better) at checkpoint step <paramref name="ScoreStep"/> and
/// their standard errors over the items.</summary>
public sealed record SeedRun(long RunId, long Seed, IReadOnlyDictionary<string, LossCurve> Curves, IReadOnlyDictionary<string, double>? Scores = null,
    IReadOnlyDictionary<string, double?>? ScoreErrors = null, long ScoreStep = 0);

/// <summary>The paper's speedup (tokens to reach the baseline's final loss) over seed pairs.</summary>
/// <param name="Pairs">Seed pairs compared.</param>
/// <param name="Reached">Pairs in which the candidate reached its baseline's final loss.</param>
/// <param name="Speedups">Each pair's speedup, by seed (those that reached it).</param>
/// <param name="LowerBounds">Pairs whose speedup is only a lower bound (the candidate was at the target at its first point).</param>
/// <param name="Interval">The speedup's paired t interval; only when every pair reached the target with an exact speedup
/// (else a mean of the pairs that did, or of lower bounds, would misstate it).</param>
/// <param name="Summary">One sentence.</param>
public sealed record SeededSpeedup(int Pairs, int Reached, IReadOnlyDictionary<long, double> Speedups, int LowerBounds, PairedDifference? Interval, string Summary);

/// <summary>One loss curve of a candidate variant against the baseline variant, paired by seed: each variant's loss at
/// <paramref name="Tokens"/>, the largest token count every pair covers (mean and std over seeds), the paired delta there
/// with its interval, and the speedup.</summary>
public sealed record SeededCurve(string Metric, IReadOnlyList<long> Seeds, double Tokens, SeedSummary Baseline, SeedSummary Candidate, PairedDifference Delta,
    SeededSpeedup? Speedup);

/// <summary>One score (an accuracy) of a candidate variant against the baseline variant, paired by seed.</summary>
/// <param name="ItemStderr">The standard error of the mean difference from the items' sampling, which seeds do not
/// average away (every seed is scored on the same items): sqrt(mean se_b^2 + mean se_c^2); null without item counts.</param>
/// <param name="Noise">The mean difference lies within two <see cref="ItemStderr"/>: never resolved, however tight the
/// interval over seeds (a one-item difference at every seed gives a zero-width interval).</param>
public sealed record SeededScore(string Name, IReadOnlyList<long> Seeds, SeedSummary Baseline, SeedSummary Candidate, PairedDifference Delta,
    double? ItemStderr, bool Noise);

/// <summary>
/// Seed-paired comparison of two variants (docs/hc-math.md section 10): seed s of the candidate against seed s of the
/// baseline. The same seed gives both the same sublayer weights and data order, so the pair differs by the connection
/// alone and the seed-to-seed noise cancels in the difference.
/// </summary>
public static class SeedComparison
{
    /// <summary>The seeds both variants ran, each with its two runs (the lowest run id where a seed was run twice).</summary>
    public static IReadOnlyList<(long Seed, SeedRun Baseline, SeedRun Candidate)> Pairs(IReadOnlyList<SeedRun> baseline, IReadOnlyList<SeedRun> candidate)
    {
        static Dictionary<long, SeedRun> BySeed(IEnumerable<SeedRun> runs) =>
            runs.GroupBy(r => r.Seed).ToDictionary(g => g.Key, g => g.MinBy(r => r.RunId)!);
        var (b, c) = (BySeed(baseline), BySeed(candidate));
        return b.Keys.Intersect(c.Keys).Order().Select(s => (s, b[s], c[s])).ToList();
    }

    /// <summary>Every loss curve both variants have in every pair: per pair, both losses at the largest token count every
    /// pair covers (after <paramref name="smoothing"/> for that metric; pairs that overlap only at 0 tokens, the step-0
    /// validation of runs that have not trained yet, say nothing and are left out) and their difference; with
    /// <paramref name="speedup"/>, also each pair's speedup.</summary>
    public static IReadOnlyList<SeededCurve> Curves(IReadOnlyList<SeedRun> baseline, IReadOnlyList<SeedRun> candidate,
        Func<string, LossCurve, Smoothing> smoothing, bool speedup = true)
    {
        var pairs = Pairs(baseline, candidate);
        if (pairs.Count == 0) return [];
        var metrics = pairs.Select(p => p.Baseline.Curves.Keys.Intersect(p.Candidate.Curves.Keys))
            .Aggregate((a, b) => a.Intersect(b)).Order(StringComparer.Ordinal).ToList();
        var result = new List<SeededCurve>();
        foreach (var metric in metrics)
        {
            // The pairs whose curves overlap beyond 0 tokens, and the largest token count all of them cover.
            var usable = new List<(long Seed, LossCurve B, LossCurve C, Smoothing Smooth, double Last)>();
            foreach (var (seed, b, c) in pairs)
            {
                var (bc, cc) = (b.Curves[metric], c.Curves[metric]);
                var smooth = smoothing(metric, bc);
                if (LossCurves.Deltas(bc, cc, smooth).LastCommonTokens is { } last && last > 0) usable.Add((seed, bc, cc, smooth, last));
            }
            if (usable.Count == 0) continue;
            var at = usable.Min(u => u.Last);
            var seeds = new List<long>();
            var (bs, cs, deltas) = (new List<double>(), new List<double>(), new List<double>());
            var speedups = new Dictionary<long, double>();
            var (reached, lowerBounds) = (0, 0);
            foreach (var (seed, bc, cc, smooth, _) in usable)
            {
                var (sb, sc) = (smooth.Apply(bc), smooth.Apply(cc));
                if (LossCurves.LossAt(sb, at) is not { } lb || LossCurves.LossAt(sc, at) is not { } lc) continue;   // starts after 'at'
                seeds.Add(seed);
                bs.Add(lb);
                cs.Add(lc);
                deltas.Add(lc - lb);
                if (!speedup) continue;
                var s = LossCurves.Speedup(bc, cc, smooth);
                if (s.Speedup is { } x) { reached++; speedups[seed] = x; if (s.IsLowerBound) lowerBounds++; }
            }
            if (seeds.Count == 0) continue;
            SeededSpeedup? sp = null;
            if (speedup)
            {
                var interval = reached == seeds.Count && lowerBounds == 0 ? SeedStatistics.Speedup(speedups.Values) : null;
                var summary = interval?.Verdict ?? (reached == 0
                    ? $"never reached the baseline's final loss (0 of {seeds.Count} seeds)"
                    : reached < seeds.Count ? $"reached the baseline's final loss in {reached} of {seeds.Count} seeds: no speedup interval"
                    : $"{lowerBounds} of {seeds.Count} seeds give only a lower bound (already at the target at their first point): no speedup interval");
                sp = new SeededSpeedup(seeds.Count, reached, speedups, lowerBounds, interval, summary);
            }
            result.Add(new SeededCurve(metric, seeds, at, SeedSummary.Of(bs), SeedSummary.Of(cs), SeedStatistics.LossDelta(deltas), sp));
        }
        return result;
    }

    /// <summary>Every score both runs of every pair have (accuracies: higher is better), paired by seed; a mean
    /// difference within two standard errors of the items' sampling is noise.</summary>
    public static IReadOnlyList<SeededScore> Scores(IReadOnlyList<SeedRun> baseline, IReadOnlyList<SeedRun> candidate)
    {
        // Scores of the same checkpoint step only: a baseline evaluated at its end against a candidate still at step 10 is no pair.
        var pairs = Pairs(baseline, candidate).Where(p => p.Baseline.Scores is not null && p.Candidate.Scores is not null && p.Baseline.ScoreStep == p.Candidate.ScoreStep).ToList();
        if (pairs.Count == 0) return [];
        var names = pairs.Select(p => p.Baseline.Scores!.Keys.Intersect(p.Candidate.Scores!.Keys)).Aggregate((a, b) => a.Intersect(b)).ToList();
        return names.Select(name =>
        {
            var delta = SeedStatistics.AccuracyDelta(pairs.Select(p => p.Candidate.Scores![name] - p.Baseline.Scores![name]).ToList());
            static double? Error(SeedRun r, string name) => r.ScoreErrors?.GetValueOrDefault(name);
            double? itemSe = pairs.All(p => Error(p.Baseline, name) is not null && Error(p.Candidate, name) is not null)
                ? Math.Sqrt(pairs.Average(p => Math.Pow(Error(p.Baseline, name)!.Value, 2)) + pairs.Average(p => Math.Pow(Error(p.Candidate, name)!.Value, 2)))
                : null;
            var noise = itemSe is { } se && Math.Abs(delta.Mean) < 2 * se;
            if (noise)
                delta = delta with
                {
                    Resolved = false,
                    Verdict = FormattableString.Invariant($"noise: {100 * delta.Mean:+0.0;-0.0;0.0}pt is within two standard errors of the items' sampling (2 x {100 * itemSe!.Value:0.0}pt), whatever the spread between seeds"),
                };
            return new SeededScore(name, pairs.Select(p => p.Seed).ToList(),
                SeedSummary.Of(pairs.Select(p => p.Baseline.Scores![name]).ToList()),
                SeedSummary.Of(pairs.Select(p => p.Candidate.Scores![name]).ToList()), delta, itemSe, noise);
        }).ToList();
    }
}
