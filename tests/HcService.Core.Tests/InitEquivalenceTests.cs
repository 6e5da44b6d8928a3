using HcService.Contract.Config;
using TorchSharp;
using static HcService.Core.Tests.TestModels;

namespace HcService.Core.Tests;

/// <summary>
/// docs/hc-math.md section 3.4: at init every stream carries the same vector, so an HC network given the residual network's
/// sublayer weights computes the same function: the reduced hidden state divided by n equals the residual
/// hidden state, and with norm epsilon 0 (the final norm then removes the factor n exactly) the logits match.
/// </summary>
public class InitEquivalenceTests
{
    public static TheoryData<ConnectionType, int, bool, Architecture> Cases()
    {
        var data = new TheoryData<ConnectionType, int, bool, Architecture>();
        foreach (var arch in new[] { Architecture.Dense, Architecture.Moe })
            foreach (var n in new[] { 1, 2, 4, 8 })
            {
                data.Add(ConnectionType.StaticHc, n, true, arch);
                data.Add(ConnectionType.DynamicHc, n, true, arch);
                data.Add(ConnectionType.DynamicHc, n, false, arch);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void HyperConnectionsAtInitEqualPreNormResidual(ConnectionType type, int n, bool tanh, Architecture arch)
    {
        var hcConn = new ConnectionConfig { Type = type, Rate = n, Tanh = tanh };
        foreach (var (norm, eps) in new[] { (NormKind.LayerNorm, 1e-5), (NormKind.LayerNorm, 0.0), (NormKind.RmsNorm, 0.0) })
        {
            using var scope = torch.NewDisposeScope();
            var residual = Build(Tiny(ConnectionConfig.Residual, arch, norm, eps), seed: 3);
            var hc = Build(Tiny(hcConn, arch, norm, eps), seed: 4);
            var copied = CopySharedWeights(residual, hc);
            Assert.Equal(residual.parameters().Count(), copied);   // every residual weight has its HC twin

            var tokens = Tokens(2, 16, 64);
            using var _ = torch.no_grad();
            var r = residual.Forward(tokens);
            var h = hc.Forward(tokens);

            var hiddenRel = RelDiff(h.Hidden / n, r.Hidden);
            Assert.True(hiddenRel <= 1e-6, $"{norm} eps={eps}: hidden/n differs from residual by {hiddenRel:E2} (relative)");
            if (eps == 0.0)
            {
                var logitsDiff = MaxAbsDiff(h.Logits, r.Logits);
                Assert.True(logitsDiff <= 1e-5, $"{norm}: logits differ by {logitsDiff:E2}");
            }
            if (arch == Architecture.Moe)
                for (var l = 0; l < r.Moe.Count; l++)
                    Assert.Equal(r.Moe[l].ExpertTokens, h.Moe[l].ExpertTokens);
        }
    }

    [Fact]
    public void WithTheUsualEpsilonLogitsDifferOnlySlightly()
    {
        // The final norm sees an input n times larger, so eps = 1e-5 moves the logits a little (docs/hc-math.md section 3.4):
        // a real difference that must stay small. This pins both facts: nonzero, and far below the logits' scale.
        using var scope = torch.NewDisposeScope();
        var residual = Build(Tiny(ConnectionConfig.Residual), seed: 3);
        var hc = Build(Tiny(ConnectionConfig.DynamicHc(4)), seed: 4);
        CopySharedWeights(residual, hc);
        var tokens = Tokens(2, 16, 64);
        using var _ = torch.no_grad();
        var diff = MaxAbsDiff(hc.Forward(tokens).Logits, residual.Forward(tokens).Logits);
        Assert.InRange(diff, 1e-9, 5e-2);
    }
}
