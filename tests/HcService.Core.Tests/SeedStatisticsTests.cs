using HcService.Contract.Analysis;
using HcService.Contract.Evaluation;
using HcService.Contract.Jobs;

namespace HcService.Core.Tests;

/// <summary>Statistics over seeds (issue 14): the Student t quantile against published table values, seed-paired deltas
/// and speedups on constructed curves whose answers are known, the verdict's flip when the effect is smaller than the
/// seed noise, binomial standard errors, and the confound check on resolved plans.</summary>
public class SeedStatisticsTests
{
    [Theory]   // two-sided 95% (p = 0.975) and 99% (p = 0.995) critical values of Student's t, from the standard tables
    [InlineData(0.975, 1, 12.7062047)]
    [InlineData(0.975, 2, 4.30265273)]
    [InlineData(0.975, 3, 3.18244631)]
    [InlineData(0.975, 4, 2.77644511)]
    [InlineData(0.975, 9, 2.26215716)]
    [InlineData(0.975, 30, 2.04227246)]
    [InlineData(0.975, 1000, 1.96233908)]
    [InlineData(0.995, 2, 9.92484320)]
    [InlineData(0.025, 4, -2.77644511)]
    [InlineData(0.5, 7, 0)]
    public void StudentTQuantileMatchesTheTables(double p, int df, double expected) =>
        Assert.Equal(expected, SeedStatistics.StudentTQuantile(p, df), 6);

    /// <summary>Seed s of the baseline: a line from loss 6 at 0 tokens to <paramref name="final"/> at 1,000 tokens, on
    /// 11 points; the candidate of seed s: the same line shifted by <paramref name="shift"/> everywhere but at 0 tokens.</summary>
    static SeedRun Line(long seed, double final, double shift = 0) => new(seed * 10 + (shift == 0 ? 0 : 1), seed,
        new Dictionary<string, LossCurve>
        {
            ["val/a/loss"] = new("val", Enumerable.Range(0, 11).Select(i => new LossPoint(100 * i, 6 + (final - 6) * i / 10.0 + (i == 0 ? 0 : shift)))),
        });

    static IReadOnlyList<SeededCurve> Compare(IReadOnlyList<SeedRun> b, IReadOnlyList<SeedRun> c, bool speedup = false) =>
        SeedComparison.Curves(b, c, (_, _) => Smoothing.None, speedup);

    [Fact]
    public void APairedDeltaHasTheTIntervalOfTheDifferencesAndIsResolvedWhenItExcludesZero()
    {
        // The seeds disagree by 0.1 nats (3.0, 3.1, 3.2): more than the effect, which is -0.03, -0.02, -0.04 in the pairs.
        SeedRun[] baseline = [Line(1, 3.0), Line(2, 3.1), Line(3, 3.2)];
        SeedRun[] candidate = [Line(1, 3.0, -0.03), Line(2, 3.1, -0.02), Line(3, 3.2, -0.04)];
        var curve = Assert.Single(Compare(baseline, candidate));
        Assert.Equal([1L, 2, 3], curve.Seeds);
        Assert.Equal(3.1, curve.Baseline.Mean, 12);
        Assert.Equal(0.1, curve.Baseline.Std!.Value, 12);          // sample std: sqrt(0.02 / 2)
        Assert.Equal(3.07, curve.Candidate.Mean, 12);
        var d = curve.Delta;
        Assert.Equal(3, d.Pairs);
        Assert.Equal(-0.03, d.Mean, 12);
        Assert.Equal(0.01, d.Std!.Value, 12);
        var half = 4.30265273 * 0.01 / Math.Sqrt(3);               // t(0.975, 2) * std / sqrt(n) = 0.0248414
        Assert.Equal(-0.03 - half, d.Low!.Value, 7);
        Assert.Equal(-0.03 + half, d.High!.Value, 7);
        Assert.True(d.Resolved);
        Assert.StartsWith("resolved: lower loss", d.Verdict);
        Assert.Contains("paired Student t over 3 seeds", d.Method);
    }

    [Fact]
    public void TheVerdictFlipsToNotResolvedWhenTheEffectIsSmallerThanTheSeedNoise()
    {
        SeedRun[] baseline = [Line(1, 3.0), Line(2, 3.1), Line(3, 3.2)];
        // Mean effect -0.005, spread 0.01 between pairs: the interval -0.0298 to +0.0198 includes zero.
        var d = Assert.Single(Compare(baseline, [Line(1, 3.0, -0.015), Line(2, 3.1, 0.005), Line(3, 3.2, -0.005)])).Delta;
        Assert.Equal(-0.005, d.Mean, 12);
        Assert.True(d.Low < 0 && d.High > 0);
        Assert.False(d.Resolved);
        Assert.Equal("not resolved (-0.0050; the 95% interval -0.0298 to +0.0198 over 3 seeds includes 0.0000)", d.Verdict);

        // A worse candidate, resolved the other way.
        var worse = Assert.Single(Compare(baseline, [Line(1, 3.0, 0.05), Line(2, 3.1, 0.06), Line(3, 3.2, 0.05)])).Delta;
        Assert.True(worse.Resolved && worse.Low > 0);
        Assert.StartsWith("resolved: higher loss", worse.Verdict);
    }

    [Fact]
    public void EqualDifferencesAtEverySeedAreNotResolvedOnAZeroWidthInterval()
    {
        var d = SeedStatistics.LossDelta([-0.25, -0.25, -0.25]);
        Assert.Equal(0.0, d.Std);
        Assert.False(d.Resolved);
        Assert.Contains("no spread between seeds", d.Verdict);
    }

    [Fact]
    public void OneSeedIsNeverResolvedHoweverLargeTheEffect()
    {
        var d = Assert.Single(Compare([Line(1, 3.0)], [Line(1, 3.0, -0.5)])).Delta;
        Assert.Equal(1, d.Pairs);
        Assert.Equal(-0.5, d.Mean, 12);
        Assert.Null(d.Std);
        Assert.Null(d.Low);
        Assert.False(d.Resolved);
        Assert.StartsWith("one seed: not resolved", d.Verdict);
    }

    [Fact]
    public void RunsArePairedBySeedAndUnpairedSeedsAreLeftOut()
    {
        // Seeds 2 and 3 are in both; the baseline's seed 1 and the candidate's seed 4 have no partner.
        var curve = Assert.Single(Compare([Line(1, 2.0), Line(2, 3.1), Line(3, 3.2)], [Line(2, 3.1, -0.02), Line(3, 3.2, -0.04), Line(4, 9.0, 1)]));
        Assert.Equal([2L, 3], curve.Seeds);
        Assert.Equal(-0.03, curve.Delta.Mean, 12);
        Assert.Equal(3.15, curve.Baseline.Mean, 12);
    }

    /// <summary>The candidate of seed s reaches the baseline's final loss 0 at 1,000 / k_s tokens: a speedup of k_s.</summary>
    static (SeedRun Baseline, SeedRun Candidate) Faster(long seed, double k) =>
        (new(seed * 10, seed, new Dictionary<string, LossCurve> { ["train/loss"] = LossCurve.From("b", [(0, 10), (1000, 0)]) }),
         new(seed * 10 + 1, seed, new Dictionary<string, LossCurve> { ["train/loss"] = LossCurve.From("c", [(0, 10), (1000 / k, 0), (1000, -1)]) }));

    [Theory]
    [InlineData(1.9, 2.0, 2.1, true)]    // 2.00 +/- 0.248: faster, resolved
    [InlineData(1.5, 2.0, 2.5, false)]   // 2.00 +/- 1.242: the interval 0.76 to 3.24 includes 1
    public void TheSpeedupIsPairedBySeedWithItsInterval(double k1, double k2, double k3, bool resolved)
    {
        var pairs = new[] { Faster(1, k1), Faster(2, k2), Faster(3, k3) };
        var s = Assert.Single(Compare(pairs.Select(p => p.Baseline).ToList(), pairs.Select(p => p.Candidate).ToList(), speedup: true)).Speedup!;
        Assert.Equal(3, s.Reached);
        Assert.Equal(k1, s.Speedups[1], 9);
        Assert.Equal(k3, s.Speedups[3], 9);
        Assert.Equal(2.0, s.Interval!.Mean, 9);
        var half = 4.30265273 * (resolved ? 0.1 : 0.5) / Math.Sqrt(3);   // the sample std of the three speedups
        Assert.Equal(2.0 - half, s.Interval.Low!.Value, 6);
        Assert.Equal(resolved, s.Interval.Resolved);
        Assert.StartsWith(resolved ? "resolved: faster" : "not resolved", s.Summary);
    }

    [Fact]
    public void ASpeedupThatSomeSeedsNeverReachedHasNoInterval()
    {
        var (b1, c1) = Faster(1, 2);
        var b2 = new SeedRun(20, 2, new Dictionary<string, LossCurve> { ["train/loss"] = LossCurve.From("b", [(0, 10), (1000, 0)]) });
        var c2 = new SeedRun(21, 2, new Dictionary<string, LossCurve> { ["train/loss"] = LossCurve.From("c", [(0, 10), (1000, 0.5)]) });
        var s = Assert.Single(Compare([b1, b2], [c1, c2], speedup: true)).Speedup!;
        Assert.Equal((2, 1), (s.Pairs, s.Reached));
        Assert.Null(s.Interval);
        Assert.Contains("1 of 2 seeds", s.Summary);
    }

    [Fact]
    public void SeedPairedAccuraciesAreDifferencesOfFractions()
    {
        SeedRun Scored(long seed, double acc) => new(seed, seed, new Dictionary<string, LossCurve>(), new Dictionary<string, double> { ["average"] = acc });
        var score = Assert.Single(SeedComparison.Scores([Scored(1, 0.30), Scored(2, 0.32)], [Scored(1, 0.35), Scored(2, 0.33)]));
        Assert.Equal(0.03, score.Delta.Mean, 12);                  // +0.05 and +0.01
        Assert.Equal(Math.Sqrt(0.0008), score.Delta.Std!.Value, 12);
        Assert.False(score.Delta.Resolved);                        // 0.03 +/- 12.706 * 0.0283 / sqrt(2)
        Assert.Contains("+3.0pt", score.Delta.Verdict);
    }

    [Fact]
    public void AOneItemDifferenceAtEverySeedIsNoiseThoughItsIntervalOverSeedsHasZeroWidth()
    {
        // 30 items, one more right in every pair: +3.33pt at each seed, std 0, so the t interval is the point +3.33pt.
        SeedRun Scored(long seed, double acc) => new(seed, seed, new Dictionary<string, LossCurve>(), new Dictionary<string, double> { ["a acc"] = acc },
            new Dictionary<string, double?> { ["a acc"] = SeedStatistics.AccuracyStderr(acc, 30) });
        var score = Assert.Single(SeedComparison.Scores([Scored(1, 6 / 30.0), Scored(2, 9 / 30.0), Scored(3, 7 / 30.0)],
            [Scored(1, 7 / 30.0), Scored(2, 10 / 30.0), Scored(3, 8 / 30.0)]));
        Assert.Equal(0.0, score.Delta.Std!.Value, 12);
        Assert.Equal(1 / 30.0, score.Delta.Low!.Value, 12);
        // The items' error of the mean difference: sqrt(mean se_b^2 + mean se_c^2), about 11pt: far above 3.3pt.
        double Var(double p) => p * (1 - p) / 29;
        var expected = Math.Sqrt((Var(6 / 30.0) + Var(9 / 30.0) + Var(7 / 30.0)) / 3 + (Var(7 / 30.0) + Var(10 / 30.0) + Var(8 / 30.0)) / 3);
        Assert.Equal(expected, score.ItemStderr!.Value, 12);
        Assert.True(score.Noise);
        Assert.False(score.Delta.Resolved);
        Assert.StartsWith("noise: +3.3pt is within two standard errors", score.Delta.Verdict);

        // On 100,000 items +3pt and +4pt are far outside the items' error: noise no longer, though two seeds leave the
        // interval wide (+3.5 +/- 12.706 * 0.71 / sqrt(2)): not resolved, for that reason only.
        SeedRun Many(long seed, double acc) => Scored(seed, acc) with { ScoreErrors = new Dictionary<string, double?> { ["a acc"] = SeedStatistics.AccuracyStderr(acc, 100_000) } };
        var many = Assert.Single(SeedComparison.Scores([Many(1, 0.2), Many(2, 0.3)], [Many(1, 0.23), Many(2, 0.34)]));
        Assert.False(many.Noise);
        Assert.StartsWith("not resolved (+3.5pt; the 95% interval", many.Delta.Verdict);
    }

    [Fact]
    public void AccuracyStandardErrorsAreBinomialAsLmEvalReportsThem()
    {
        Assert.Equal(0.05, SeedStatistics.AccuracyStderr(0.5, 101)!.Value, 12);               // sqrt(0.25 / 100)
        Assert.Equal(Math.Sqrt(0.2 * 0.8 / 29), SeedStatistics.AccuracyStderr(0.2, 30)!.Value, 12);
        Assert.Equal(0.0, SeedStatistics.AccuracyStderr(1.0, 30)!.Value, 12);
        Assert.Null(SeedStatistics.AccuracyStderr(0.5, 1));
        Assert.Equal(0.025, SeedStatistics.MeanStderr([0.03, 0.04])!.Value, 12);             // sqrt(0.03^2 + 0.04^2) / 2
        Assert.Null(SeedStatistics.MeanStderr([0.03, null]));
        // A difference within two standard errors of itself is noise: se = sqrt(0.03^2 + 0.04^2) = 0.05.
        Assert.Equal((0.05, true), Rounded(SeedStatistics.DifferenceStderr(0.099, 0.03, 0.04)));
        Assert.Equal((0.05, false), Rounded(SeedStatistics.DifferenceStderr(-0.101, 0.03, 0.04)));
        static (double, bool) Rounded((double? Se, bool Noise) x) => (Math.Round(x.Se!.Value, 12), x.Noise);
    }

    [Fact]
    public void StoredAccuraciesGetTheirErrorsFromTheirItemCountsAndTheAverageFromItsTasks()
    {
        var rows = new List<StoredScore> { new(100, "boolq", "acc", 0.5), new(100, "boolq", "items", 101), new(100, "copa", "acc", 0.6) };
        foreach (var (task, metric) in EvalMetrics.PaperAverageTasks)
        {
            if (task != "copa") rows.Add(new(100, task, metric, 0.5));
            rows.Add(new(100, task, "items", 101));
        }
        rows.Add(new(100, "average", "acc", 0.5));
        var errors = AccuracyErrors.Of(rows);
        Assert.Equal(0.05, errors[(100, "boolq", "acc")]!.Value, 12);
        Assert.Equal(Math.Sqrt(0.24 / 100), errors[(100, "copa", "acc")]!.Value, 12);
        // Six tasks at 0.05 and COPA at sqrt(0.0024), averaged: sqrt(6 * 0.0025 + 0.0024) / 7.
        Assert.Equal(Math.Sqrt(6 * 0.0025 + 0.0024) / 7, errors[(100, "average", "acc")]!.Value, 12);
        Assert.False(errors.ContainsKey((100, "boolq", "items")));
        // Without item counts there is no error to report.
        Assert.Null(AccuracyErrors.Of([new(5, "boolq", "acc", 0.5)])[(5, "boolq", "acc")]);
    }

    static JobPlan Plan(string connection, string training = """ "tokenBudget": "100K", "seed": 1 """) => JobPlan.Resolve(JobSpec.Parse($$"""
        { "name": "p", "architecture": "dense", "model": { "preset": "tiny" }, "connection": {{connection}}, "training": { {{training}} } }
        """));

    [Fact]
    public void PlansThatDifferInTheConnectionAloneAreNotConfoundedAndAnyOtherDifferenceIsNamed()
    {
        var residual = Plan("""{ "type": "residual" }""");
        Assert.Empty(PlanDifferences.Confounds(residual, Plan("""{ "type": "dynamic-hc", "rate": 4 }""")));
        Assert.Empty(PlanDifferences.Confounds(residual, Plan("""{ "type": "static-hc", "rate": 2, "tanh": false }""")));
        // Another seed or checkpoint cadence is not a confound either.
        Assert.Empty(PlanDifferences.Confounds(residual, Plan("""{ "type": "residual" }""", """ "tokenBudget": "100K", "seed": 2, "checkpointInterval": "10K" """)));

        var scaled = PlanDifferences.Confounds(residual, Plan("""{ "type": "dynamic-hc", "rate": 4, "scaleOutputInit": true }"""));
        Assert.Equal(new PlanDifference("model.connection.scaleOutputInit", "false", "true"), Assert.Single(scaled));
        var lr = PlanDifferences.Confounds(residual, Plan("""{ "type": "dynamic-hc", "rate": 4 }""", """ "tokenBudget": "50K", "seed": 1, "lr": 0.001 """));
        Assert.Contains(lr, d => d.Field == "training.lr" && d.Baseline == "0.003" && d.Candidate == "0.001");
        Assert.Contains(lr, d => d.Field == "training.tokenBudget");
    }

    [Fact]
    public void SeedsOfOneConfigurationShareAVariantKeyAndConnectionsDoNot()
    {
        var a = JobPlan.Resolve(JobSpec.Parse("""{ "name": "a-s1", "architecture": "dense", "model": { "preset": "tiny" }, "connection": { "type": "residual" }, "tags": ["x"], "training": { "tokenBudget": "100K", "seed": 1 } }"""));
        var b = JobPlan.Resolve(JobSpec.Parse("""{ "name": "a-s2", "architecture": "dense", "model": { "preset": "tiny" }, "connection": { "type": "residual" }, "training": { "tokenBudget": "100K", "seed": 2 } }"""));
        Assert.Equal(PlanDifferences.VariantKey(a), PlanDifferences.VariantKey(b));
        Assert.NotEqual(PlanDifferences.VariantKey(a), PlanDifferences.VariantKey(Plan("""{ "type": "dynamic-hc", "rate": 4 }""")));
        Assert.NotEqual(PlanDifferences.VariantKey(Plan("""{ "type": "dynamic-hc", "rate": 4 }""")),
            PlanDifferences.VariantKey(Plan("""{ "type": "dynamic-hc", "rate": 4, "scaleOutputInit": true }""")));
    }
}
