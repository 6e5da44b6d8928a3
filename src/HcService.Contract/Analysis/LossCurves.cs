namespace HcService.Contract.Analysis;

/// <summary>The loss difference candidate - baseline at one token count (negative: the candidate is better).</summary>
public sealed record DeltaPoint(double Tokens, double Delta);

/// <summary>Candidate minus baseline at equal tokens.</summary>
/// <param name="Points">One delta at each of the baseline's token counts that lie inside both curves' ranges.</param>
/// <param name="LastCommonTokens">The largest token count both curves cover (the smaller of the two final counts);
/// null when the ranges do not overlap.</param>
/// <param name="DeltaAtLastCommon">The delta there: the paper's "loss -0.027 at equal tokens" number.</param>
public sealed record LossDeltas(IReadOnlyList<DeltaPoint> Points, double? LastCommonTokens, double? DeltaAtLastCommon);

/// <summary>
/// Comparing loss curves at equal tokens, and the tokens needed to reach a loss (docs/hc-math.md section 9.1: "1.8x faster
/// convergence, same loss with 1/1.8 of the tokens"). Between measured points a curve is read by linear interpolation
/// in tokens; outside its range it has no value (null), never an extrapolation.
/// </summary>
public static partial class LossCurves
{
    /// <summary>The loss at <paramref name="tokens"/> by linear interpolation; null outside [first, last] tokens.</summary>
    public static double? LossAt(LossCurve curve, double tokens)
    {
        var p = curve.Points;
        if (!(tokens >= p[0].Tokens && tokens <= p[^1].Tokens)) return null;   // also rejects NaN
        var hi = UpperIndex(p, tokens);
        if (p[hi].Tokens == tokens) return p[hi].Loss;
        var (a, b) = (p[hi - 1], p[hi]);
        return a.Loss + (b.Loss - a.Loss) * (tokens - a.Tokens) / (b.Tokens - a.Tokens);
    }

    /// <summary>
    /// The first token count at which the curve reaches <paramref name="targetLoss"/> (loss &lt;= target), interpolated
    /// linearly between the last point above the target and the first at or below it; the first point's tokens when
    /// the curve starts at or below the target; null when it never gets there. Smooth noisy curves first.
    /// </summary>
    public static double? TokensToReach(LossCurve curve, double targetLoss)
    {
        if (!double.IsFinite(targetLoss)) throw new ArgumentOutOfRangeException(nameof(targetLoss), targetLoss, "the target loss must be finite");
        var p = curve.Points;
        if (p[0].Loss <= targetLoss) return p[0].Tokens;
        for (var i = 1; i < p.Count; i++)
        {
            if (p[i].Loss > targetLoss) continue;
            var (a, b) = (p[i - 1], p[i]);   // a.Loss > target >= b.Loss, so the division is safe
            return a.Tokens + (b.Tokens - a.Tokens) * (a.Loss - targetLoss) / (a.Loss - b.Loss);
        }
        return null;
    }

    /// <summary>Candidate minus baseline at the baseline's token counts inside both ranges, and at the last common
    /// token count, after smoothing both curves with <paramref name="smoothing"/> (default: none).</summary>
    public static LossDeltas Deltas(LossCurve baseline, LossCurve candidate, Smoothing? smoothing = null)
    {
        smoothing ??= Smoothing.None;
        var (b, c) = (smoothing.Apply(baseline), smoothing.Apply(candidate));
        var from = Math.Max(b.First.Tokens, c.First.Tokens);
        var to = Math.Min(b.Last.Tokens, c.Last.Tokens);
        if (from > to) return new([], null, null);
        var points = b.Points.Where(p => p.Tokens >= from && p.Tokens <= to)
            .Select(p => new DeltaPoint(p.Tokens, LossAt(c, p.Tokens)!.Value - p.Loss)).ToArray();
        return new(points, to, LossAt(c, to)!.Value - LossAt(b, to)!.Value);
    }

    /// <summary>The index of the first point with tokens >= <paramref name="tokens"/> (which lies inside the range).</summary>
    static int UpperIndex(IReadOnlyList<LossPoint> p, double tokens)
    {
        int lo = 0, hi = p.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (p[mid].Tokens < tokens) lo = mid + 1; else hi = mid;
        }
        return lo;
    }
}
