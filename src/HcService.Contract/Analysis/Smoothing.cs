namespace HcService.Contract.Analysis;

/// <summary>
/// How a loss curve is smoothed before it is compared. Validation loss is usually smooth enough to use as is
/// (<see cref="None"/>); per-step training loss is noisy, and the first token count at which a noisy curve dips
/// under a target would reward noise, not learning.
///
/// The one smoother is a centred window in TOKENS with a local linear fit (a moving least-squares line, as in
/// LOESS with a box kernel): each point is replaced by the value at its own token count of the straight line fitted
/// to every point within +-<see cref="WindowTokens"/>/2 of it. Centred, because a trailing average or an EMA lags:
/// on a falling curve it reads high, and the baseline's final loss (the speedup target) would be biased upward.
/// A line rather than a mean, because near the ends the window is cut off on one side and a plain mean of a falling
/// curve is then biased (at the last point it reads the loss of about a quarter-window earlier); a line fitted to
/// the one-sided window is unbiased wherever the curve is locally straight. By tokens rather than by points, so the
/// same window means the same thing for runs logged at different intervals.
/// </summary>
public sealed record Smoothing
{
    public Smoothing(double windowTokens)
    {
        if (!double.IsFinite(windowTokens) || windowTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(windowTokens), windowTokens, "the smoothing window must be a finite number of tokens >= 0");
        WindowTokens = windowTokens;
    }

    /// <summary>Full width of the window in tokens; 0 means no smoothing.</summary>
    public double WindowTokens { get; }

    /// <summary>Use the points as measured.</summary>
    public static Smoothing None { get; } = new(0);

    /// <summary>A centred local-linear window <paramref name="tokens"/> wide.</summary>
    public static Smoothing Window(double tokens) => new(tokens);

    public bool IsNone => WindowTokens == 0;

    /// <summary>The smoothed curve (same name and token counts). A window holding fewer than two other points
    /// leaves a point unchanged where a line cannot be fitted.</summary>
    public LossCurve Apply(LossCurve curve)
    {
        if (IsNone || curve.Points.Count < 3) return curve;
        var p = curve.Points;
        var half = WindowTokens / 2;
        var smoothed = new LossPoint[p.Count];
        int lo = 0, hi = 0;   // the window is p[lo .. hi - 1]; both ends only move forward
        for (var i = 0; i < p.Count; i++)
        {
            var t = p[i].Tokens;
            while (p[lo].Tokens < t - half) lo++;
            while (hi < p.Count && p[hi].Tokens <= t + half) hi++;
            smoothed[i] = new(t, LocalLinear(p, lo, hi, t) ?? p[i].Loss);
        }
        return new(curve.Name, smoothed);
    }

    /// <summary>Least-squares line through p[lo .. hi - 1], evaluated at <paramref name="t"/>; null with under 3 points.
    /// Tokens are centred on <paramref name="t"/> first, so the intercept is the answer and large counts lose no precision.</summary>
    static double? LocalLinear(IReadOnlyList<LossPoint> p, int lo, int hi, double t)
    {
        var m = hi - lo;
        if (m < 3) return null;
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (var j = lo; j < hi; j++)
        {
            var x = p[j].Tokens - t;
            sx += x; sy += p[j].Loss; sxx += x * x; sxy += x * p[j].Loss;
        }
        var det = m * sxx - sx * sx;
        if (det <= 1e-12 * m * sxx) return sy / m;
        var slope = (m * sxy - sx * sy) / det;
        return (sy - slope * sx) / m;
    }
}
