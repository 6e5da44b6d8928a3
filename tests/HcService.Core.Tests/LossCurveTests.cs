using HcService.Contract.Analysis;
using HcService.Core.Analysis;

namespace HcService.Core.Tests;

/// <summary>Loss-curve comparison (issue 6): interpolation, tokens-to-reach, deltas and the paper's speedup, on curves
/// constructed so that the answers are known.</summary>
public class LossCurveTests
{
    static readonly LossCurve Tri = LossCurve.From("tri", [(0, 4), (10, 2), (20, 1)]);

    /// <summary>A scaling-law shaped curve L(t) = 2 + 10 t^-0.1, read at tokens * <paramref name="tokenScale"/>:
    /// scale 1.8 is a model that needs 1/1.8 of the tokens for every loss.</summary>
    static LossCurve PowerLaw(string name, IEnumerable<double> tokens, double tokenScale = 1, double noise = 0, int seed = 0)
    {
        var rng = new Random(seed);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        return new(name, tokens.Select(t => new LossPoint(t, 2 + 10 * Math.Pow(t * tokenScale, -0.1) + noise * Gaussian())));
    }

    [Theory]
    [InlineData(0, 4.0)]
    [InlineData(5, 3.0)]
    [InlineData(10, 2.0)]
    [InlineData(15, 1.5)]
    [InlineData(20, 1.0)]
    public void LossAtInterpolatesLinearly(double tokens, double expected) =>
        Assert.Equal(expected, LossCurves.LossAt(Tri, tokens)!.Value, 12);

    [Theory]
    [InlineData(-0.001)]
    [InlineData(20.001)]
    [InlineData(double.NaN)]
    public void LossAtIsNullOutsideTheRange(double tokens) => Assert.Null(LossCurves.LossAt(Tri, tokens));

    [Theory]
    [InlineData(5.0, 0.0)]    // already there at the first point
    [InlineData(4.0, 0.0)]
    [InlineData(3.0, 5.0)]
    [InlineData(1.5, 15.0)]
    [InlineData(1.0, 20.0)]
    public void TokensToReachInterpolatesTheFirstCrossing(double target, double expected) =>
        Assert.Equal(expected, LossCurves.TokensToReach(Tri, target)!.Value, 12);

    [Fact]
    public void TokensToReachTakesTheFirstCrossingAndIsNullWhenNeverReached()
    {
        var bumpy = LossCurve.From("bumpy", [(0, 3), (10, 1), (20, 3), (30, 0)]);
        Assert.Equal(5.0, LossCurves.TokensToReach(bumpy, 2)!.Value, 12);
        Assert.Null(LossCurves.TokensToReach(Tri, 0.999));
    }

    [Fact]
    public void SinglePointCurveHasAValueOnlyAtItsPoint()
    {
        var one = LossCurve.From("one", [(100, 3)]);
        Assert.Equal(3.0, LossCurves.LossAt(one, 100));
        Assert.Null(LossCurves.LossAt(one, 99));
        Assert.Equal(100.0, LossCurves.TokensToReach(one, 3));
        Assert.Null(LossCurves.TokensToReach(one, 2.9));
        Assert.Same(one, Smoothing.Window(50).Apply(one));
        // A single-point baseline: its one loss is the target.
        var s = LossCurves.Speedup(one, Tri);
        Assert.Equal(3.0, s.TargetLoss);
        Assert.Equal(100 / 5.0, s.Speedup!.Value, 12);
    }

    [Theory]
    [InlineData(new[] { 0.0, 20, 10 }, "point 2 has 10 after point 1 with 20")]
    [InlineData(new[] { 0.0, 10, 10 }, "point 2 has 10 after point 1 with 10")]
    public void UnsortedOrDuplicatedTokensAreRejected(double[] tokens, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => new LossCurve("run 7", tokens.Select(t => new LossPoint(t, 3))));
        Assert.Contains("strictly increasing", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Contains("run 7", e.Message);
    }

    [Fact]
    public void InvalidPointsAndWindowsAreRejectedWithTheirValues()
    {
        Assert.Contains("no points", Assert.Throws<ArgumentException>(() => new LossCurve("x", [])).Message);
        Assert.Contains("loss NaN", Assert.Throws<ArgumentException>(() => LossCurve.From("x", [(1, double.NaN)])).Message);
        Assert.Contains("tokens -1", Assert.Throws<ArgumentException>(() => LossCurve.From("x", [(-1, 3)])).Message);
        Assert.Equal(-5.0, Assert.Throws<ArgumentOutOfRangeException>(() => Smoothing.Window(-5)).ActualValue);
    }

    [Fact]
    public void SmoothingKeepsAStraightLineExactlyEvenAtTheEnds()
    {
        // A local linear fit is unbiased on a straight segment even where the window is cut off (a plain moving mean
        // would read 0.25 window early at the last point). Irregular spacing, to show the window is in tokens.
        var tokens = Enumerable.Range(0, 60).Select(i => 1000.0 * i + (i % 3) * 170).ToArray();
        var line = new LossCurve("line", tokens.Select(t => new LossPoint(t, 5 - 1e-4 * t)));
        var smoothed = Smoothing.Window(9000).Apply(line);
        Assert.Equal(line.Points.Select(p => p.Tokens), smoothed.Points.Select(p => p.Tokens));
        for (var i = 0; i < tokens.Length; i++) Assert.Equal(line.Points[i].Loss, smoothed.Points[i].Loss, 9);
    }

    [Fact]
    public void SpeedupOfTheSameCurveOnScaledTokensIs1Point8()
    {
        var grid = Enumerable.Range(1, 100).Select(k => 1e7 * k).ToArray();
        var baseline = PowerLaw("baseline", grid);
        var candidate = PowerLaw("DHC x4", grid, tokenScale: 1.8);
        var s = LossCurves.Speedup(baseline, candidate);
        Assert.Equal(1.8, s.Speedup!.Value, 1e-3);
        Assert.Equal(1e9 / 1.8, s.CandidateTokens!.Value, 1e9 / 1.8 * 1e-3);
        Assert.Equal(baseline.Last.Loss, s.TargetLoss);
        Assert.False(s.IsLowerBound);
        Assert.Equal("DHC x4 reached baseline's final loss 3.259 at 556M tokens: 1.80x fewer tokens than baseline's 1B.", s.Summary);
    }

    [Fact]
    public void SmoothingRecoversTheSpeedupFromNoisyTrainingLoss()
    {
        var grid = Enumerable.Range(1, 4000).Select(k => 2.5e5 * k).ToArray();
        var baseline = PowerLaw("baseline", grid, noise: 0.01, seed: 11);
        var candidate = PowerLaw("DHC x4", grid, tokenScale: 1.8, noise: 0.01, seed: 12);
        var smoothed = LossCurves.Speedup(baseline, candidate, Smoothing.Window(2e8)).Speedup!.Value;
        var raw = LossCurves.Speedup(baseline, candidate).Speedup!.Value;
        Assert.True(Math.Abs(smoothed - 1.8) < 0.04, $"smoothed speedup {smoothed:F4}, expected 1.8 +- 0.04");
        // Unsmoothed, the first noisy dip under the target wins: much further off.
        Assert.True(Math.Abs(raw - 1.8) > 3 * Math.Abs(smoothed - 1.8), $"raw {raw:F4} vs smoothed {smoothed:F4}");
    }

    [Fact]
    public void CandidateThatNeverReachesTheTargetGetsNoNumberAndAPlainSentence()
    {
        var baseline = LossCurve.From("baseline", [(0.4e6, 3.9), (0.8e6, 3.5), (1.2e6, 3.412)]);
        var candidate = LossCurve.From("DHC x4", [(0.4e6, 3.8), (0.8e6, 3.5), (1.2e6, 3.43), (1.6e6, 3.44)]);
        var s = LossCurves.Speedup(baseline, candidate);
        Assert.Null(s.Speedup);
        Assert.Null(s.CandidateTokens);
        Assert.Equal(new LossPoint(1.2e6, 3.43), s.CandidateBest);
        Assert.Equal("DHC x4 never reached baseline's final loss 3.412 (its best: 3.430 at 1.2M tokens).", s.Summary);
    }

    [Fact]
    public void CandidateBelowTheTargetFromItsFirstPointGivesALowerBound()
    {
        var baseline = LossCurve.From("baseline", [(1e6, 4), (2e6, 3)]);
        var candidate = LossCurve.From("SHC x2", [(0.5e6, 2.9), (1e6, 2.5)]);
        var s = LossCurves.Speedup(baseline, candidate);
        Assert.True(s.IsLowerBound);
        Assert.Equal(4.0, s.Speedup!.Value, 12);
        Assert.Equal("SHC x2 reached baseline's final loss 3.000 already at its first point, 500k tokens: at least 4.00x fewer tokens than baseline's 2M.", s.Summary);
    }

    [Fact]
    public void DeltasAreTakenAtTheBaselinePointsInsideBothRangesAndAtTheLastCommonTokens()
    {
        var baseline = LossCurve.From("baseline", [(0, 4), (10, 3), (20, 2.5), (30, 2.2)]);
        var candidate = LossCurve.From("candidate", [(5, 3.6), (15, 2.6), (25, 2.3)]);
        var d = LossCurves.Deltas(baseline, candidate);
        Assert.Equal([10.0, 20.0], d.Points.Select(p => p.Tokens));
        Assert.Equal(3.1 - 3.0, d.Points[0].Delta, 12);    // candidate at 10: (3.6 + 2.6) / 2
        Assert.Equal(2.45 - 2.5, d.Points[1].Delta, 12);   // candidate at 20: (2.6 + 2.3) / 2
        Assert.Equal(25.0, d.LastCommonTokens);
        Assert.Equal(2.3 - 2.35, d.DeltaAtLastCommon!.Value, 12);
        var disjoint = LossCurves.Deltas(baseline, LossCurve.From("late", [(40, 2), (50, 1.9)]));
        Assert.Empty(disjoint.Points);
        Assert.Null(disjoint.DeltaAtLastCommon);
    }

    [Theory]
    [InlineData(950, "950")]
    [InlineData(12_000, "12k")]
    [InlineData(1.2e6, "1.2M")]
    [InlineData(555.56e6, "556M")]
    [InlineData(500e9, "500B")]
    public void TokenCountsAreWrittenShort(double tokens, string expected) => Assert.Equal(expected, TokenFormat.Short(tokens));
}
