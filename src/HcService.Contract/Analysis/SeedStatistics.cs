using System.Globalization;

namespace HcService.Contract.Analysis;

/// <summary>One quantity of one variant over its seeds: the mean and the sample standard deviation (n - 1 in the
/// denominator; none with a single seed).</summary>
public sealed record SeedSummary(int Seeds, double Mean, double? Std)
{
    public static SeedSummary Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("a summary needs at least one value", nameof(values));
        var mean = values.Average();
        double? std = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : null;
        return new(values.Count, mean, std);
    }
}

/// <summary>
/// The difference candidate - baseline of one quantity, paired by seed (each seed's candidate against the same seed's
/// baseline, which shares its sublayer weights and data order), with a Student t interval over the pairs.
/// </summary>
/// <param name="Pairs">Seeds run by both.</param>
/// <param name="Mean">The mean of the per-seed differences.</param>
/// <param name="Std">Their sample standard deviation (none for one pair).</param>
/// <param name="Low">The interval's lower end (none for one pair).</param>
/// <param name="High">The interval's upper end.</param>
/// <param name="Confidence">The interval's coverage, 0.95.</param>
/// <param name="Method">How the interval was computed, in words.</param>
/// <param name="Resolved">The interval excludes the null value (0 for a difference, 1 for a ratio); never with one pair.</param>
/// <param name="Verdict">One sentence: "resolved: ...", "not resolved: ..." or "one seed: not resolved".</param>
public sealed record PairedDifference(int Pairs, double Mean, double? Std, double? Low, double? High, double Confidence, string Method,
    bool Resolved, string Verdict);

/// <summary>
/// Statistics over seeds (docs/hc-math.md section 10): a paired t interval, the Student t quantile it needs, and the
/// binomial standard error of an accuracy.
/// </summary>
public static class SeedStatistics
{
    public const double Confidence = 0.95;

    /// <summary>
    /// The mean of the paired values with its two-sided <see cref="Confidence"/> Student t interval,
    /// mean +/- t(0.975, n - 1) * std / sqrt(n), and a verdict: resolved when the interval excludes
    /// <paramref name="nullValue"/>.
    /// </summary>
    /// <param name="values">One value per seed pair (a difference candidate - baseline, or a ratio).</param>
    /// <param name="nullValue">What "no effect" is: 0 for a difference, 1 for a speedup ratio.</param>
    /// <param name="below">How the verdict names an effect below the null value ("lower", "slower").</param>
    /// <param name="above">... and above it ("higher", "faster").</param>
    /// <param name="format">How the verdict prints a value.</param>
    public static PairedDifference Paired(IReadOnlyCollection<double> values, double nullValue, string below, string above, Func<double, string> format)
    {
        if (values.Count == 0) throw new ArgumentException("a paired difference needs at least one pair", nameof(values));
        var summary = SeedSummary.Of(values);
        var method = $"paired Student t over {values.Count} seed{(values.Count == 1 ? "" : "s")}";
        if (summary.Std is not { } std)
            return new(1, summary.Mean, null, null, null, Confidence, method, false,
                $"one seed: not resolved ({format(summary.Mean)}; run more seeds for an interval)");
        // Every pair differs by the same amount: the t interval has zero width, which says nothing about its error
        // (a discrete measurement, one item more at every seed; or a deterministic difference). Never resolved on that.
        if (std == 0)
            return new(values.Count, summary.Mean, 0, summary.Mean, summary.Mean, Confidence, method, false,
                $"not resolved ({format(summary.Mean)} at every one of {values.Count} seeds: no spread between seeds to build an interval from)");
        var half = StudentTQuantile(0.5 + Confidence / 2, values.Count - 1) * std / Math.Sqrt(values.Count);
        var (low, high) = (summary.Mean - half, summary.Mean + half);
        var interval = $"{Percent(Confidence)} interval {format(low)} to {format(high)} over {values.Count} seeds";
        var resolved = low > nullValue || high < nullValue;
        var verdict = !resolved ? $"not resolved ({format(summary.Mean)}; the {interval} includes {format(nullValue)})"
            : $"resolved: {(high < nullValue ? below : above)} ({format(summary.Mean)}; {interval})";
        return new(values.Count, summary.Mean, std, low, high, Confidence, method, resolved, verdict);
    }

    /// <summary>A loss difference candidate - baseline (lower is better) over seed pairs.</summary>
    public static PairedDifference LossDelta(IReadOnlyCollection<double> deltas) =>
        Paired(deltas, 0, "lower loss", "higher loss", v => v.ToString("+0.0000;-0.0000;0.0000", CultureInfo.InvariantCulture));

    /// <summary>An accuracy difference (a fraction; higher is better) over seed pairs.</summary>
    public static PairedDifference AccuracyDelta(IReadOnlyCollection<double> deltas) =>
        Paired(deltas, 0, "lower accuracy", "higher accuracy", v => (100 * v).ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + "pt");

    /// <summary>A speedup ratio (above 1: the candidate needed fewer tokens) over seed pairs.</summary>
    public static PairedDifference Speedup(IReadOnlyCollection<double> ratios) =>
        Paired(ratios, 1, "slower", "faster", v => v.ToString("0.00", CultureInfo.InvariantCulture) + "x");

    /// <summary>
    /// The standard error of an accuracy <paramref name="p"/> measured on <paramref name="items"/> items, as
    /// lm-evaluation-harness reports acc_stderr: the sample standard deviation of the 0/1 outcomes over sqrt(n),
    /// sqrt(p (1 - p) / (n - 1)). None for fewer than two items.
    /// </summary>
    public static double? AccuracyStderr(double p, int items) =>
        items < 2 || !(p >= 0 && p <= 1) ? null : Math.Sqrt(p * (1 - p) / (items - 1));

    /// <summary>The standard error of an unweighted mean of independent accuracies: sqrt(sum se_i^2) / k.</summary>
    public static double? MeanStderr(IReadOnlyCollection<double?> stderrs) =>
        stderrs.Count == 0 || stderrs.Any(s => s is null) ? null : Math.Sqrt(stderrs.Sum(s => s!.Value * s.Value)) / stderrs.Count;

    /// <summary>
    /// An accuracy difference between two runs is noise when it lies within two standard errors of the difference,
    /// sqrt(se_a^2 + se_b^2) (the two runs' results treated as independent samples).
    /// </summary>
    public static (double? Stderr, bool Noise) DifferenceStderr(double delta, double? stderrA, double? stderrB)
    {
        if (stderrA is not { } a || stderrB is not { } b) return (null, false);
        var se = Math.Sqrt(a * a + b * b);
        return (se, Math.Abs(delta) < 2 * se);
    }

    /// <summary>The <paramref name="p"/> quantile of Student's t distribution with <paramref name="df"/> degrees of
    /// freedom (p in (0, 1)), by bisection on its distribution function.</summary>
    public static double StudentTQuantile(double p, int df)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "a probability strictly between 0 and 1");
        if (df < 1) throw new ArgumentOutOfRangeException(nameof(df), df, "at least 1 degree of freedom");
        if (p == 0.5) return 0;
        if (p < 0.5) return -StudentTQuantile(1 - p, df);
        double lo = 0, hi = 1;
        while (StudentTCdf(hi, df) < p) hi *= 2;
        for (var i = 0; i < 200 && hi - lo > 1e-12 * hi; i++)
        {
            var mid = (lo + hi) / 2;
            if (StudentTCdf(mid, df) < p) lo = mid; else hi = mid;
        }
        return (lo + hi) / 2;
    }

    /// <summary>P(T &lt;= t) for Student's t with <paramref name="df"/> degrees of freedom:
    /// 1 - I_x(df/2, 1/2) / 2 with x = df / (df + t^2) for t &gt;= 0, by symmetry below.</summary>
    public static double StudentTCdf(double t, int df)
    {
        var tail = 0.5 * RegularizedIncompleteBeta(df / (df + t * t), df / 2.0, 0.5);
        return t >= 0 ? 1 - tail : tail;
    }

    /// <summary>I_x(a, b) by its continued fraction (modified Lentz), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
    /// where the fraction converges slowly.</summary>
    static double RegularizedIncompleteBeta(double x, double a, double b)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        var front = Math.Exp(LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x));
        if (x > (a + 1) / (a + b + 2)) return 1 - front * BetaFraction(1 - x, b, a) / b;
        return front * BetaFraction(x, a, b) / a;
    }

    static double BetaFraction(double x, double a, double b)
    {
        const double Tiny = 1e-300;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
        var h = d;
        for (var m = 1; m <= 500; m++)
        {
            var even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
            d = 1 + even * d; d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
            c = 1 + even / c; if (Math.Abs(c) < Tiny) c = Tiny;
            h *= d * c;
            var odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
            d = 1 + odd * d; d = 1 / (Math.Abs(d) < Tiny ? Tiny : d);
            c = 1 + odd / c; if (Math.Abs(c) < Tiny) c = Tiny;
            var step = d * c;
            h *= step;
            if (Math.Abs(step - 1) < 1e-15) break;
        }
        return h;
    }

    /// <summary>ln Gamma(x) for x &gt; 0 (Lanczos, g = 7, nine coefficients; about 15 significant digits).</summary>
    static double LogGamma(double x)
    {
        ReadOnlySpan<double> c =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        x -= 1;
        var sum = c[0];
        for (var i = 1; i < c.Length; i++) sum += c[i] / (x + i);
        var t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }

    static string Percent(double p) => (100 * p).ToString("0", CultureInfo.InvariantCulture) + "%";
}
