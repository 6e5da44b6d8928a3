using System.Globalization;

namespace HcService.Contract.Analysis;

/// <summary>How many times fewer tokens the candidate needed to reach the baseline's final loss.</summary>
/// <param name="Baseline">The baseline curve's name.</param>
/// <param name="Candidate">The candidate curve's name.</param>
/// <param name="TargetLoss">The baseline's final (smoothed) loss.</param>
/// <param name="BaselineTokens">The baseline's final token count.</param>
/// <param name="CandidateTokens">Tokens the (smoothed) candidate needed to reach the target; null if it never did.</param>
/// <param name="Speedup">BaselineTokens / CandidateTokens (above 1: the candidate is faster); null if it never reached it.</param>
/// <param name="IsLowerBound">The candidate was already at or below the target at its first point, so it may have
/// crossed earlier: the true speedup is at least <see cref="Speedup"/>.</param>
/// <param name="CandidateBest">The candidate's lowest (smoothed) loss and where, for the "never reached" case.</param>
/// <param name="Summary">One plain-English sentence for people.</param>
public sealed record SpeedupResult(string Baseline, string Candidate, double TargetLoss, double BaselineTokens,
    double? CandidateTokens, double? Speedup, bool IsLowerBound, LossPoint CandidateBest, string Summary);

public static partial class LossCurves
{
    /// <summary>
    /// The paper's convergence speedup: target = the baseline's final smoothed loss; the candidate's tokens to reach it
    /// (<see cref="TokensToReach"/> on the smoothed candidate); speedup = baseline final tokens / candidate tokens.
    /// When the candidate never reaches the target there is no number, and the summary says so.
    /// </summary>
    public static SpeedupResult Speedup(LossCurve baseline, LossCurve candidate, Smoothing? smoothing = null)
    {
        smoothing ??= Smoothing.None;
        var (b, c) = (smoothing.Apply(baseline), smoothing.Apply(candidate));
        var target = b.Last.Loss;
        var baselineTokens = b.Last.Tokens;
        var best = c.Best;
        var reached = TokensToReach(c, target);
        if (reached is not { } tokens)
            return new(b.Name, c.Name, target, baselineTokens, null, null, false, best,
                $"{c.Name} never reached {b.Name}'s final loss {Loss(target)} (its best: {Loss(best.Loss)} at {Tokens(best.Tokens)} tokens).");
        var lowerBound = c.First.Loss <= target;
        if (tokens <= 0)
            return new(b.Name, c.Name, target, baselineTokens, tokens, null, lowerBound, best,
                $"{c.Name} was already at {b.Name}'s final loss {Loss(target)} at 0 tokens; no finite speedup.");
        var speedup = baselineTokens / tokens;
        var at = lowerBound ? $"already at its first point, {Tokens(tokens)} tokens" : $"at {Tokens(tokens)} tokens";
        var factor = speedup >= 1
            ? $"{(lowerBound ? "at least " : "")}{speedup.ToString("0.00", CultureInfo.InvariantCulture)}x fewer tokens than {b.Name}'s {Tokens(baselineTokens)}"
            : $"{(1 / speedup).ToString("0.00", CultureInfo.InvariantCulture)}x more tokens than {b.Name}'s {Tokens(baselineTokens)} (speedup {speedup.ToString("0.00", CultureInfo.InvariantCulture)}x)";
        return new(b.Name, c.Name, target, baselineTokens, tokens, speedup, lowerBound, best,
            $"{c.Name} reached {b.Name}'s final loss {Loss(target)} {at}: {factor}.");
    }

    static string Loss(double loss) => loss.ToString("0.000", CultureInfo.InvariantCulture);

    static string Tokens(double tokens) => TokenFormat.Short(tokens);
}
