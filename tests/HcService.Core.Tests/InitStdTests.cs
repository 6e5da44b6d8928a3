using HcService.Contract.Config;
using TorchSharp;
using static HcService.Core.Tests.TestModels;

namespace HcService.Core.Tests;

/// <summary>
/// The host init against its formulas (docs/hc-math.md section 4), module by module and layer by layer, read from the
/// drawn weights: mitchell gives inputs 1/sqrt(d), the attention output 1/sqrt(2 d (l+1)) and the MLP output
/// 1/sqrt(2 F (l+1)); normal gives 0.02 everywhere; scaleOutputInit divides the two output stds by sqrt(n). Every
/// draw is a normal truncated at 3 std, whose std is 0.98658 times the untruncated one.
/// </summary>
[Collection(GlobalTorchRng.Name)]
public class InitStdTests
{
    const double Truncation = 0.986582;   // sqrt(1 - 6 phi(3) / (2 Phi(3) - 1))

    static ModelConfig Wide(InitKind init, ConnectionConfig connection) =>
        Tiny(connection) with { Layers = 3, DModel = 256, Heads = 4, MlpHidden = 512, Vocab = 64, EmbeddingSize = 64, Init = init };

    static double Std(torch.Tensor w) => w.detach().to_type(torch.ScalarType.Float64).std().item<double>();

    static void Near(double expected, torch.Tensor w, string what)
    {
        var actual = Std(w);
        Assert.True(Math.Abs(actual / (expected * Truncation) - 1) < 0.02, $"{what}: std {actual:G4}, formula {expected * Truncation:G4}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void MitchellFollowsOlmosFormulasPerLayerAndTheRescalingDividesTheOutputsBySqrtN(int n)
    {
        var connection = n == 1 ? ConnectionConfig.Residual : ConnectionConfig.DynamicHc(n) with { ScaleOutputInit = true };
        var c = Wide(InitKind.Mitchell, connection);
        using var model = Build(c, seed: 2);
        double d = c.DModel, f = c.MlpHidden, scale = Math.Sqrt(n);
        Near(1 / Math.Sqrt(d), model.Embedding!.weight!, "embedding");
        for (var l = 0; l < c.Layers; l++)
        {
            var block = model.Blocks[l];
            Near(1 / Math.Sqrt(d), block.Attn.InputProjection.weight!, $"layer {l} qkv");
            Near(1 / Math.Sqrt(2 * d * (l + 1)) / scale, block.Attn.OutputProjection.weight!, $"layer {l} attention out");
            Near(1 / Math.Sqrt(d), block.Mlp!.InputProjection.weight!, $"layer {l} mlp in");
            Near(1 / Math.Sqrt(2 * f * (l + 1)) / scale, block.Mlp!.OutputProjection.weight!, $"layer {l} mlp out");
        }
    }

    [Fact]
    public void NormalInitIsPointZeroTwoEverywhereAndMatchedByDefault()
    {
        var c = Wide(InitKind.Normal, ConnectionConfig.StaticHc(4));   // no rescaling unless asked
        using var model = Build(c, seed: 3);
        Near(0.02, model.Embedding!.weight!, "embedding");
        for (var l = 0; l < c.Layers; l++)
        {
            var block = model.Blocks[l];
            Near(0.02, block.Attn.InputProjection.weight!, $"layer {l} qkv");
            Near(0.02, block.Attn.OutputProjection.weight!, $"layer {l} attention out");
            Near(0.02, block.Mlp!.InputProjection.weight!, $"layer {l} mlp in");
            Near(0.02, block.Mlp!.OutputProjection.weight!, $"layer {l} mlp out");
        }
    }
}
