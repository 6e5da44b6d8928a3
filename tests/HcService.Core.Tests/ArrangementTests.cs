using HcService.Contract.Config;
using HcService.Core.Connections;
using TorchSharp;
using static HcService.Core.Tests.TestModels;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>docs/hc-math.md section 5: special arrangements of the static matrices reproduce known networks.</summary>
public class ArrangementTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void SequentialArrangementEqualsResidualNetwork(int n)
    {
        // B = ones, A_m = e_1, A_r = I for every sublayer (not the k mod n one-hot of the init).
        using var scope = NewDisposeScope();
        var residual = Build(Tiny(ConnectionConfig.Residual), seed: 5);
        var hc = Build(Tiny(ConnectionConfig.StaticHc(n)), seed: 6);
        CopySharedWeights(residual, hc);
        foreach (var conn in hc.Connections.Cast<HyperConnection>())
            conn.SetStatic(ones(n), nn.functional.one_hot(tensor(0L), n).to_type(ScalarType.Float32), eye(n));

        var tokens = Tokens(2, 16, 64);
        using var _ = no_grad();
        var rel = RelDiff(hc.Forward(tokens).Hidden / n, residual.Forward(tokens).Hidden);
        Assert.True(rel <= 1e-6, $"sequential arrangement differs from residual by {rel:E2}");
    }

    [Fact]
    public void ParallelArrangementEqualsHandBuiltParallelBlock()
    {
        // n = 2, HC matrices with rows/cols ordered [0 B; A_m A_r] (docs/hc-math.md section 5.3):
        //   first sublayer of a block  [[0,1,0],[1,1,1],[1,1,1]]: B = (1,0), A_m = (1,1), A_r = ones
        //   second sublayer            [[0,0,1],[0,1,0],[1,0,1]]: B = (0,1), A_m = (0,1), A_r = I
        // Wiring it implies for streams (a, b): s = a + b; both sublayers read s (a parallel block);
        // a' = s + T1(s), b' = s + T2(s). The hand-built network below computes exactly that with the same weights.
        using var scope = NewDisposeScope();
        var hc = Build(Tiny(ConnectionConfig.StaticHc(2)), seed: 8);
        var conns = hc.Connections.Cast<HyperConnection>().ToList();
        for (var k = 0; k < conns.Count; k++)
        {
            if (k % 2 == 0) conns[k].SetStatic(tensor(new[] { 1f, 0f }), tensor(new[] { 1f, 1f }), ones(2, 2));
            else conns[k].SetStatic(tensor(new[] { 0f, 1f }), tensor(new[] { 0f, 1f }), eye(2));
        }

        var tokens = Tokens(2, 16, 64);
        using var _ = no_grad();
        var actual = hc.Forward(tokens).Hidden;

        var h0 = hc.Embedding!.forward(tokens);
        Tensor a = h0, b = h0;
        foreach (var block in hc.Blocks)
        {
            var s = a + b;
            var t1 = block.Attn.forward(block.AttnNorm.forward(s));
            var t2 = block.Mlp!.forward(block.FfNorm.forward(s));
            (a, b) = (s + t1, s + t2);
        }
        var expected = a + b;

        var rel = RelDiff(actual, expected);
        Assert.True(rel <= 1e-6, $"parallel arrangement differs from the hand-built parallel block by {rel:E2}");
        // And it is really different from the sequential network built from the same weights.
        var sequential = hc.Embedding!.forward(tokens);
        foreach (var block in hc.Blocks)
        {
            sequential = sequential + block.Attn.forward(block.AttnNorm.forward(sequential));
            sequential = sequential + block.Mlp!.forward(block.FfNorm.forward(sequential));
        }
        Assert.True(RelDiff(actual / 4, sequential) > 1e-3);
    }

    [Fact]
    public void PostNormComputesNormOfSumAfterEachSublayer()
    {
        using var scope = NewDisposeScope();
        var m = Build(Tiny(new ConnectionConfig { Type = ConnectionType.PostNorm }), seed: 9);
        var tokens = Tokens(2, 16, 64);
        using var _ = no_grad();
        var h = m.Embedding!.forward(tokens);
        foreach (var block in m.Blocks)
        {
            h = block.AttnNorm.forward(h + block.Attn.forward(h));
            h = block.FfNorm.forward(h + block.Mlp!.forward(h));
        }
        var rel = RelDiff(m.Forward(tokens).Hidden, h);
        Assert.True(rel <= 1e-6, $"post-norm differs from norm(h + T(h)) by {rel:E2}");
    }

    [Fact]
    public void AnAsymmetricStreamMixingFollowsTheIndexConvention()
    {
        // n = 2 with an asymmetric A_r, so that a transposed mixing cannot pass (docs/hc-math.md section 3.2:
        // H'_j = sum_i A_r[i, j] H_i, x = sum_i A_m[i] H_i, H_out_j = B[j] y + H'_j):
        //   attention:  B = (1, 0), A_m = (1, 0), A_r = [[1, 1], [0, 1]]  ->  H'_0 = a, H'_1 = a + b
        //   MLP:        B = (0, 1), A_m = (0, 1), A_r = I
        using var scope = NewDisposeScope();
        var hc = Build(Tiny(ConnectionConfig.StaticHc(2)), seed: 9);
        var conns = hc.Connections.Cast<HyperConnection>().ToList();
        for (var k = 0; k < conns.Count; k++)
        {
            if (k % 2 == 0) conns[k].SetStatic(tensor(new[] { 1f, 0f }), tensor(new[] { 1f, 0f }), tensor(new[,] { { 1f, 1f }, { 0f, 1f } }));
            else conns[k].SetStatic(tensor(new[] { 0f, 1f }), tensor(new[] { 0f, 1f }), eye(2));
        }

        var tokens = Tokens(2, 16, 64);
        using var _ = no_grad();
        var actual = hc.Forward(tokens).Hidden;

        var h0 = hc.Embedding!.forward(tokens);
        Tensor a = h0, b = h0;
        foreach (var block in hc.Blocks)
        {
            var t1 = block.Attn.forward(block.AttnNorm.forward(a));
            (a, b) = (t1 + a, a + b);
            var t2 = block.Mlp!.forward(block.FfNorm.forward(b));
            b = t2 + b;
        }
        var expected = a + b;
        var rel = RelDiff(actual, expected);
        Assert.True(rel <= 1e-6, $"the asymmetric mixing differs from the hand-built network by {rel:E2}");
    }
}
