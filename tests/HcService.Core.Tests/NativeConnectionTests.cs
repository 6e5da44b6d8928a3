using HcService.Contract.Config;
using HcService.Contract.Jobs;
using HcService.Core.Connections;
using HcService.Core.Model;
using HcService.Core.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>The fused CPU kernels (Native/hc_connections.c) against the tensor path they replace: the same loss and the
/// same gradient for every parameter, static and dynamic HC, with and without tanh, LayerNorm and RMSNorm (whose weight
/// the kernels differentiate too), n = 1, 2, 4, and the mixing kernels under mHC's and mHC-lite's weights. The kernels sum in another order than MKL, so neither is bitwise the
/// other: each fp32 path is compared with the same model in float64, and the kernels must be as close to it as the tensor
/// path is (within 4x its error, or 2e-5 of the gradient's largest value; 1e-4 for the two scalar scales).</summary>
[Collection(GlobalTorchRng.Name)]   // builds models and draws dropout masks from the global generator
public class NativeConnectionTests
{
    [Fact]
    public void TheKernelsAreBuiltOnThisMachine() =>
        Assert.True(NativeConnections.Available, $"the fused CPU kernels: {NativeConnections.Status} (the build compiles them with gcc; scripts/setup.sh installs it)");

    [Theory]
    [InlineData("static-hc", 4, true, NormKind.LayerNorm)]
    [InlineData("dynamic-hc", 4, true, NormKind.LayerNorm)]
    [InlineData("dynamic-hc", 4, false, NormKind.LayerNorm)]
    [InlineData("dynamic-hc", 2, true, NormKind.RmsNorm)]
    [InlineData("dynamic-hc", 1, true, NormKind.LayerNorm)]
    [InlineData("static-hc", 2, true, NormKind.RmsNorm)]
    [InlineData("mhc", 4, true, NormKind.LayerNorm)]        // weights by tensor ops, mixed by the kernels
    [InlineData("mhc-lite", 3, true, NormKind.RmsNorm)]
    public void FusedKernelsGiveTheTensorPathsLossAndGradients(string type, int rate, bool tanh, NormKind norm)
    {
        Assert.True(NativeConnections.Available, NativeConnections.Status);
        var connection = type switch
        {
            "static-hc" => ConnectionConfig.StaticHc(rate) with { Tanh = tanh },
            "dynamic-hc" => ConnectionConfig.DynamicHc(rate) with { Tanh = tanh },
            "mhc" => ConnectionConfig.Mhc(rate),
            _ => ConnectionConfig.MhcLite(rate),
        };
        var config = TestModels.Tiny(connection, norm: norm);
        var exact = Step(config, ConnectionKernels.Tensor, ScalarType.Float64);
        var reference = Step(config, ConnectionKernels.Tensor);
        var fused = Step(config, ConnectionKernels.Auto);
        Assert.Equal(reference.Loss, fused.Loss, 5);
        Assert.Equal(reference.Grads.Keys.Order(), fused.Grads.Keys.Order());
        foreach (var (name, g) in exact.Grads)
        {
            var scale = Math.Max(g.Max(Math.Abs), 1e-12);
            double Error(double[] other) => g.Zip(other, (a, b) => Math.Abs(a - b)).Max() / scale;
            var (tensorError, fusedError) = (Error(reference.Grads[name]), Error(fused.Grads[name]));
            // HC's own parameters are sums over every token and stream, with cancellation (the scalars s_a, s_b most): 2e-5
            // of the largest value (1e-4 for a scalar) is float noise there; a wrong term is 1e-3 or more.
            Assert.True(fusedError <= Math.Max(4 * tensorError, g.Length == 1 ? 1e-4 : 2e-5),
                $"{type} x{rate} tanh={tanh} {norm}: {name} is {fusedError:E2} of its largest gradient from float64; the tensor path {tensorError:E2}");
        }
    }

    /// <summary>The kernels are the forward too (evaluation, no graph): the same logits as the tensor path.</summary>
    [Fact]
    public void WithoutAGraphTheFusedForwardGivesTheSameLogits()
    {
        var config = TestModels.Tiny(ConnectionConfig.DynamicHc(4));
        var tokens = TestModels.Tokens(2, config.MaxSeqLen, config.Vocab);
        float[] Logits(ConnectionKernels kernels)
        {
            using var scope = NewDisposeScope();
            var model = Perturbed(config);
            model.ConnectionKernels = kernels;
            using var _ = no_grad();
            return model.Forward(tokens).Logits.data<float>().ToArray();
        }
        var (a, b) = (Logits(ConnectionKernels.Tensor), Logits(ConnectionKernels.Auto));
        Assert.True(a.Zip(b, (x, y) => Math.Abs(x - y)).Max() <= 1e-4, "logits differ");
    }

    static LanguageModel Perturbed(ModelConfig config)
    {
        var model = TestModels.Build(config);
        using var _ = no_grad();
        var g = new Generator(11);
        foreach (var p in model.parameters()) p.add_(randn(p.shape, generator: g) * 0.05);
        return model;
    }

    static (double Loss, Dictionary<string, double[]> Grads) Step(ModelConfig config, ConnectionKernels kernels, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var model = Perturbed(config);
        if (dtype != ScalarType.Float32) model.to(dtype);
        model.train();
        model.ConnectionKernels = kernels;
        var tokens = TestModels.Tokens(4, config.MaxSeqLen + 1, config.Vocab);
        var output = model.Forward(tokens.narrow(1, 0, config.MaxSeqLen));
        var loss = model.Loss(output, tokens.narrow(1, 1, config.MaxSeqLen)).Total;
        loss.backward();
        Recompute.Release();
        return (loss.to_type(ScalarType.Float64).item<double>(), model.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.to_type(ScalarType.Float64).data<double>().ToArray()));
    }
}
