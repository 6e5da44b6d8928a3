using System.Text.Json;
using HcService.Contract.Analysis;
using HcService.Core.Analysis;
using HcService.Contract.Config;
using HcService.Core.Connections;
using HcService.Core.Model;
using TorchSharp;
using static HcService.Core.Tests.TestModels;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>
/// HC connection analysis (docs/hc-math.md section 8): static weights, dynamic-weight statistics, the unfolded connection
/// matrix (checked against a brute-force run of the real connection modules) and adjacent-layer cosine similarity.
/// </summary>
public class ConnectionAnalysisTests
{
    static ModelConfig ThreeBlocks(ConnectionConfig c) => Tiny(c) with { Layers = 3 };

    /// <summary>Random, non-init static matrices in every HC module (float64), so every product term matters.</summary>
    static void RandomizeStatic(LanguageModel model, int seed)
    {
        var rng = new Random(seed);
        Tensor Rand(params long[] shape) =>
            tensor(Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => rng.NextDouble() * 2 - 1).ToArray()).reshape(shape);
        foreach (var hc in model.Connections.OfType<HyperConnection>())
            hc.SetStatic(Rand(hc.Rate), Rand(hc.Rate), Rand(hc.Rate, hc.Rate));
    }

    /// <summary>
    /// c(k, j) by brute force, through the model's own connection modules: the embedding is the unit vector e_0,
    /// sublayer j ignores its input and writes e_{j+1}, and each sublayer's norm is replaced by an RMSNorm that is the
    /// identity to ~1e-11 (weight 1e6, eps 1e12: x 1e6 / sqrt(mean(x^2) + 1e12)). Everything is linear then, so
    /// coordinate j + 1 of sublayer k's input is exactly how much of y_j reaches it; the output row is read from the
    /// reduced trunk state. No formula of the analysis is used.
    /// </summary>
    static double[][] BruteForce(LanguageModel model)
    {
        var c = model.Config;
        var (D, S) = (c.DModel, c.Sublayers);
        Assert.True(D >= S + 1, "the probe needs a coordinate per source");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var identity = new Norm("identity", D, NormKind.RmsNorm, 1e12);
        identity.to(ScalarType.Float64);
        identity.parameters().Single().fill_(1e6);
        Tensor Unit(int i) => nn.functional.one_hot(tensor((long)i), D).to_type(ScalarType.Float64).view(1, 1, D);
        var h = Streams.Expand(Unit(0), c.Connection);
        double[] Read(Tensor x_11D) => x_11D.reshape(D).narrow(0, 0, S + 1).data<double>().ToArray();
        var rows = new double[S + 1][];
        var k = 0;
        foreach (var conn in model.Connections)
        {
            var kk = k++;
            h = conn.Forward(h, identity, x => { rows[kk] = Read(x); return Unit(kk + 1); });
        }
        rows[S] = Read(Streams.Reduce(h, c.Connection));
        return rows;
    }

    static void AssertMatrixClose(double[][] expected, double[][] actual, double tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = Math.Max(1, expected.SelectMany(r => r).Max(Math.Abs));
        for (var r = 0; r < expected.Length; r++)
            for (var col = 0; col < expected[r].Length; col++)
                Assert.True(Math.Abs(expected[r][col] - actual[r][col]) <= tol * scale,
                    $"{what}[{r}][{col}]: expected {expected[r][col]:G9}, got {actual[r][col]:G9}");
    }

    public static TheoryData<ConnectionType, int> BruteForceCases() => new()
    {
        { ConnectionType.StaticHc, 2 },
        { ConnectionType.StaticHc, 4 },
        { ConnectionType.DynamicHc, 2 },   // dynamic projections at their init (0): the linear recursion is exact
        { ConnectionType.Residual, 1 },
    };

    [Theory]
    [MemberData(nameof(BruteForceCases))]
    public void UnfoldedMatrixMatchesBruteForceThroughTheRealModules(ConnectionType type, int n)
    {
        using var scope = NewDisposeScope();
        var model = Build(ThreeBlocks(new ConnectionConfig { Type = type, Rate = n }), seed: 3);
        model.to(ScalarType.Float64);
        RandomizeStatic(model, seed: 40 + n);
        var weights = SublayerConnection.Of(model).Select(s => s.Static).ToList();
        var unfolded = ConnectionMatrix.Unfold(weights, "static");
        var expected = BruteForce(model);
        AssertMatrixClose(expected, unfolded.Values, 1e-9, "c");
        Assert.Equal(7, unfolded.Values.Length);   // 6 sublayers + the output row
        if (n < 2) return;
        // The test has power: with A_r transposed (the other convention) the numbers are different.
        var transposed = weights.Select(w => w with { Ar = [.. Enumerable.Range(0, n).Select(i => w.Ar.Select(row => row[i]).ToArray())] }).ToList();
        var wrong = ConnectionMatrix.Unfold(transposed, "wrong").Values;
        var maxDiff = expected.Zip(wrong, (e, w) => e.Zip(w, (a, b) => Math.Abs(a - b)).Max()).Max();
        Assert.True(maxDiff > 1e-2, $"transposed A_r gives the same matrix (max diff {maxDiff:G3}); the check would be blind");
    }

    [Fact]
    public void ResidualMatrixIsTheAllOnesLowerTriangle()
    {
        using var scope = NewDisposeScope();
        var report = ConnectionReport.Of(Build(ThreeBlocks(ConnectionConfig.Residual)), Tokens(2, 8, 64));
        var m = report.StaticMatrix!;
        for (var k = 0; k <= 6; k++)
            for (var col = 0; col <= 6; col++)
                Assert.Equal(col <= k ? 1.0 : 0.0, m.Values[k][col]);
        Assert.Equal(["0", "1", "2", "3", "4", "5", "out"], m.ReadingLabels);
        Assert.Equal(["emb", "0", "1", "2", "3", "4", "5"], m.WritingLabels);
        Assert.Equal(1.0, m.At(k: 6, j: -1));
        Assert.Equal(1, report.Rate);
        Assert.Null(report.Dynamic);
    }

    [Fact]
    public void StaticWeightsAreReportedInTheDocumentedLayout()
    {
        using var scope = NewDisposeScope();
        var model = Build(Tiny(ConnectionConfig.DynamicHc(3)));
        var hc = (HyperConnection)model.Blocks[1].MlpConnection;
        hc.SetStatic(tensor(new[] { 1f, 2f, 3f }), tensor(new[] { 4f, 5f, 6f }), tensor(new[] { 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f }).view(3, 3));
        var all = SublayerConnection.Of(model);
        Assert.Equal(4, all.Count);
        var s = all[3];
        Assert.Equal((3, "blocks.1.ff_conn"), (s.Sublayer, s.Name));
        Assert.Equal([1.0, 2, 3], s.Static.B);
        Assert.Equal([4.0, 5, 6], s.Static.Am);
        Assert.Equal([3.0, 4, 5], s.Static.Ar[1]);   // row i = the stream read from
        Assert.Equal(0.01, s.AlphaScale!.Value, 6);
        Assert.Equal(0.01, s.BetaScale!.Value, 6);
        // At init: B = 1, A_m = one-hot at k mod n, A_r = I (eq. 14).
        Assert.Equal([0.0, 0, 1], all[2].Static.Am);
        Assert.Equal([0.0, 1, 0], all[2].Static.Ar[1]);

        var postNorm = Build(Tiny(new ConnectionConfig { Type = ConnectionType.PostNorm }));
        Assert.Contains("PostNormConnection (post-norm)", Assert.Throws<ArgumentException>(() => SublayerConnection.Of(postNorm)).Message);
        Assert.Null(ConnectionReport.Of(postNorm, Tokens(1, 4, 64)).StaticMatrix);
    }

    [Fact]
    public void TraceFollowsTheModelsOwnForwardPass()
    {
        using var scope = NewDisposeScope();
        var model = Build(Tiny(ConnectionConfig.DynamicHc(2)));
        RandomizeDynamic(model, seed: 5);
        var tokens = Tokens(2, 8, 64);
        var traced = TrunkTrace.Run(model, tokens, null, null);
        using var _ = no_grad();
        Assert.Equal(0.0, MaxAbsDiff(traced, model.Forward(tokens).Hidden));
    }

    [Fact]
    public void TraceMatchesAHandComposedTrunk()
    {
        // Independent of Block.Forward: a residual trunk composed by hand from the sublayer modules (h + T(norm(h))),
        // and the layer states the trace reports after the embedding and after each block.
        using var scope = NewDisposeScope();
        var model = Build(ThreeBlocks(ConnectionConfig.Residual), seed: 12);
        var tokens = Tokens(2, 8, 64);
        var states = new List<Tensor>();
        var traced = TrunkTrace.Run(model, tokens, null, (l, h) => { Assert.Equal(states.Count, l); states.Add(h.clone().DetachFromDisposeScope()); });
        using var _ = no_grad();
        var hand = model.Embedding!.forward(tokens);
        Assert.Equal(0.0, MaxAbsDiff(states[0], hand));
        for (var l = 0; l < 3; l++)
        {
            var block = model.Blocks[l];
            hand = hand + block.Attn.forward(block.AttnNorm.forward(hand));
            hand = hand + block.Mlp!.forward(block.FfNorm.forward(hand));
            Assert.True(MaxAbsDiff(states[l + 1], hand) <= 1e-6, $"layer {l + 1}: the trace differs from the hand-composed trunk");
        }
        Assert.Equal(4, states.Count);
        Assert.True(MaxAbsDiff(traced, hand) <= 1e-6);
        foreach (var t in states) t.Dispose();
    }

    static void RandomizeDynamic(LanguageModel model, int seed)
    {
        RandomizeStatic(model, seed);
        torch.manual_seed(seed);
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("dynamic_proj")) p.copy_(randn(p.shape) * 0.5);
            if (name.EndsWith("dynamic_alpha_scale") || name.EndsWith("dynamic_beta_scale")) p.fill_(0.5);
        }
    }

    [Fact]
    public void DynamicStatisticsEqualAnIndependentRecomputationAtTheFirstSublayer()
    {
        // Sublayer 0 reads n copies of the embedding, so its per-token weights follow from eqs. 10-13 directly:
        // WC(H)[i, m] = WC[i, m] + s_a tanh(norm(h0) . W_m) and B(H)[i] = B[i] + s_b tanh(norm(h0) . W_b), equal for every i.
        using var scope = NewDisposeScope();
        const int n = 3;
        var model = Build(Tiny(ConnectionConfig.DynamicHc(n)));
        RandomizeDynamic(model, seed: 9);
        var tokens = Tokens(2, 8, 64);
        var report = ConnectionReport.Of(model, tokens);
        var stats = report.Dynamic![0];
        Assert.Equal(16, stats.Tokens);
        Assert.Equal(4, report.Dynamic.Count);

        using var _ = no_grad();
        var p = model.named_parameters().Where(q => q.name.StartsWith("blocks.0.attn_conn.")).ToDictionary(q => q.name[19..], q => q.parameter.to_type(ScalarType.Float64));
        var h0 = model.Embedding!.forward(tokens).reshape(16, -1).to_type(ScalarType.Float64);
        var proj = nn.functional.layer_norm(h0, [h0.shape[1]], eps: 1e-5).matmul(p["dynamic_proj"].t()).tanh();   // [X, n+2]
        double Mean(Tensor t) => t.mean().item<double>();
        double Std(Tensor t) => t.std(unbiased: false).item<double>();
        var (sa, sb) = (p["dynamic_alpha_scale"].item<double>(), p["dynamic_beta_scale"].item<double>());
        var wc = p["static_alpha"];
        for (var i = 0; i < n; i++)
        {
            Assert.Equal(wc[i, 0].item<double>() + sa * Mean(proj[.., 0]), stats.Mean.Am[i], 5);
            Assert.Equal(sa * Std(proj[.., 0]), stats.Std.Am[i], 5);
            Assert.Equal(p["static_beta"][i].item<double>() + sb * Mean(proj[.., n + 1]), stats.Mean.B[i], 5);
            for (var j = 0; j < n; j++)
            {
                Assert.Equal(wc[i, 1 + j].item<double>() + sa * Mean(proj[.., 1 + j]), stats.Mean.Ar[i][j], 5);
                Assert.Equal(sa * Std(proj[.., 1 + j]), stats.Std.Ar[i][j], 5);
            }
        }
        Assert.True(stats.Std.B[0] > 1e-3, "the dynamic weights should move from token to token here");
        // The dynamic matrix is the unfolding of the means, and differs from the static one.
        AssertMatrixClose(ConnectionMatrix.Unfold([.. report.Dynamic.Select(d => d.Mean)], "x").Values, report.DynamicMatrix!.Values, 0, "dynamic");
        Assert.Contains("mean over 16 tokens", report.DynamicMatrix.Source);
    }

    [Fact]
    public void DynamicHcAtInitHasStaticMeansAndNoSpread()
    {
        using var scope = NewDisposeScope();
        var report = ConnectionReport.Of(Build(Tiny(ConnectionConfig.DynamicHc(2))), Tokens(2, 8, 64));
        foreach (var d in report.Dynamic!)
        {
            Assert.Equal(report.Static![d.Sublayer].Static.Am, d.Mean.Am);
            Assert.All(d.Std.B.Concat(d.Std.Am).Concat(d.Std.Ar.SelectMany(r => r)), s => Assert.Equal(0.0, s));
        }
        AssertMatrixClose(report.StaticMatrix!.Values, report.DynamicMatrix!.Values, 1e-7, "dynamic at init");

        // The statistics measure the per-token weights, not the static ones: with dynamic projections away from zero
        // the same report shows spread and means that move off the static values.
        var trained = Build(Tiny(ConnectionConfig.DynamicHc(2)));
        RandomizeDynamic(trained, seed: 6);
        var moved = ConnectionReport.Of(trained, Tokens(2, 8, 64));
        foreach (var d in moved.Dynamic!)
        {
            Assert.Contains(d.Std.B.Concat(d.Std.Am).Concat(d.Std.Ar.SelectMany(r => r)), s => s > 1e-3);
            Assert.NotEqual(moved.Static![d.Sublayer].Static.Am, d.Mean.Am);
        }
    }

    [Fact]
    public void AdjacentCosineMatchesAHandComputationAndIsTheSameForHcAtInit()
    {
        using var scope = NewDisposeScope();
        var residual = Build(ThreeBlocks(ConnectionConfig.Residual), seed: 5);
        var tokens = Tokens(2, 8, 64);
        var similarity = LayerSimilarity.Of(residual, tokens);
        Assert.Equal(3, similarity.AdjacentCosine.Length);
        Assert.Equal(16, similarity.Tokens);
        using (no_grad())
        {
            var h = residual.Embedding!.forward(tokens);
            for (var l = 0; l < 3; l++)
            {
                var next = residual.Blocks[l].Forward(h, _ => { });
                var expected = nn.functional.cosine_similarity(h, next, dim: -1).mean().item<float>();
                Assert.Equal(expected, similarity.AdjacentCosine[l], 5);
                h = next;
            }
        }
        // docs/hc-math.md section 3.4: at init with the same sublayer weights, SHC's reduced hidden state is n times the residual one,
        // so the cosines (scale free) agree: the measure compares residual and HC on the same footing.
        var hc = Build(ThreeBlocks(ConnectionConfig.StaticHc(4)), seed: 6);
        CopySharedWeights(residual, hc);
        var hcSimilarity = ConnectionReport.Of(hc, tokens).Similarity;
        for (var l = 0; l < 3; l++) Assert.Equal(similarity.AdjacentCosine[l], hcSimilarity.AdjacentCosine[l], 5);
        Assert.True(similarity.AdjacentCosine.All(c => c is > 0 and < 1), "cosines of distinct hidden states lie in (0, 1) here");
    }

    [Fact]
    public void ReportSerialisesToJsonWithPlainArrays()
    {
        using var scope = NewDisposeScope();
        var report = ConnectionReport.Of(Build(Tiny(ConnectionConfig.DynamicHc(2))), Tokens(1, 4, 64));
        var json = JsonSerializer.Serialize(report);
        using var doc = JsonDocument.Parse(json);
        var values = doc.RootElement.GetProperty("StaticMatrix").GetProperty("Values");
        Assert.Equal(5, values.GetArrayLength());
        Assert.Equal(1.0, values[1][0].GetDouble());   // at init sublayer 1 reads the embedding once (A_m one-hot) ...
        Assert.Equal(2.0, values[4][0].GetDouble());   // ... and the output, a sum over n = 2 identical streams, twice
        Assert.Equal(2, doc.RootElement.GetProperty("Dynamic")[0].GetProperty("Mean").GetProperty("Rate").GetInt32());
    }
}
