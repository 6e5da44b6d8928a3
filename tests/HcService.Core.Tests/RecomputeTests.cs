using HcService.Contract.Config;
using HcService.Contract.Jobs;
using HcService.Core.Connections;
using HcService.Core.Model;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>training.recompute changes what backward keeps, never what it computes: for every connection type, the loss
/// and every parameter's gradient with recompute = hc or block equal those without (with dropout on, so that block
/// recomputation must replay the same masks), and the recomputing nodes really ran.</summary>
[Collection(GlobalTorchRng.Name)]   // builds models and draws dropout masks from the global generator
public class RecomputeTests(ITestOutputHelper output)
{
    public static TheoryData<string, RecomputeMode> Cases()
    {
        var data = new TheoryData<string, RecomputeMode>();
        foreach (var label in Connections.Keys)
            foreach (var mode in new[] { RecomputeMode.Hc, RecomputeMode.Block })
                if (!(label.StartsWith("moe", StringComparison.Ordinal) && mode == RecomputeMode.Block)) data.Add(label, mode);
        return data;
    }

    static readonly Dictionary<string, (ConnectionConfig Connection, Architecture Arch)> Connections = new()
    {
        ["residual"] = (ConnectionConfig.Residual, Architecture.Dense),
        ["post-norm"] = (new ConnectionConfig { Type = ConnectionType.PostNorm }, Architecture.Dense),
        ["shc-x4"] = (ConnectionConfig.StaticHc(4), Architecture.Dense),
        ["dhc-x4"] = (ConnectionConfig.DynamicHc(4), Architecture.Dense),
        ["dhc-x2-no-tanh"] = (ConnectionConfig.DynamicHc(2) with { Tanh = false }, Architecture.Dense),
        ["dfc-m4"] = (ConnectionConfig.Frac(4), Architecture.Dense),
        ["mhc-x4"] = (ConnectionConfig.Mhc(4), Architecture.Dense),
        ["mhc-lite-x4"] = (ConnectionConfig.MhcLite(4), Architecture.Dense),
        ["moe-dhc-x4"] = (ConnectionConfig.DynamicHc(4), Architecture.Moe),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void RecomputedBackwardGivesTheSameLossAndGradients(string label, RecomputeMode mode)
    {
        var (connection, arch) = Connections[label];
        var config = TestModels.Tiny(connection, arch) with { Dropout = 0.1 };
        // Like with like: hc runs on tensor ops (its per-block scheme), so its reference does too; block recomputes
        // whatever the blocks run, here the fused CPU kernels where they apply.
        var kernels = mode == RecomputeMode.Hc ? HcService.Core.Native.ConnectionKernels.Tensor : HcService.Core.Native.ConnectionKernels.Auto;
        var reference = Step(config, RecomputeMode.None, kernels);
        var before = Recompute.Recomputations;
        var recomputed = Step(config, mode, kernels);
        var ran = Recompute.Recomputations - before;

        // Recomputing nodes ran where there is something to recompute: every block under block; under hc, per block, the
        // MLP connection's input streams for n copies (HC, mHC), plus the attention connection's weights where they
        // depend on the streams (dynamic HC, mHC, mHC-lite), and each connection's weights for dynamic FC; none for
        // residual and post-norm.
        var expected = mode == RecomputeMode.Block ? config.Layers
            : connection.Type is ConnectionType.DynamicHc or ConnectionType.Mhc or ConnectionType.MhcLite ? 2 * config.Layers
            : connection.Type == ConnectionType.StaticHc ? config.Layers
            : connection is { IsFrac: true, Dynamic: true } ? 2 * config.Layers
            : 0;
        Assert.Equal(expected, ran);

        Assert.Equal(reference.Loss, recomputed.Loss);
        Assert.Equal(reference.Grads.Keys.Order(), recomputed.Grads.Keys.Order());
        var bitwise = 0;
        foreach (var (name, g) in reference.Grads)
        {
            var r = recomputed.Grads[name];
            var scale = Math.Max(g.Max(Math.Abs), 1e-30f);
            var worst = g.Zip(r, (a, b) => Math.Abs(a - b)).Max() / scale;
            Assert.True(worst <= 1e-6, $"{label} {mode}: {name} differs by {worst:E2} of its largest gradient");
            if (g.SequenceEqual(r)) bitwise++;
        }
        output.WriteLine($"{label} {mode}: {ran} recomputing nodes; {bitwise} of {reference.Grads.Count} gradients bitwise equal, the rest within 1e-6");
    }

    /// <summary>One forward and backward of a model with every parameter moved off its init (so that the dynamic weights
    /// depend on the input), in training mode: the loss and each gradient.</summary>
    static (float Loss, Dictionary<string, float[]> Grads) Step(ModelConfig config, RecomputeMode mode, HcService.Core.Native.ConnectionKernels kernels)
    {
        using var scope = NewDisposeScope();
        var model = TestModels.Build(config);
        using (no_grad())
        {
            var g = new Generator(11);
            foreach (var p in model.parameters()) p.add_(randn(p.shape, generator: g) * 0.05);
        }
        model.train();
        model.Recompute = mode;
        model.ConnectionKernels = kernels;
        var tokens = TestModels.Tokens(4, config.MaxSeqLen + 1, config.Vocab);
        manual_seed(5);   // the dropout masks
        var output = model.Forward(tokens.narrow(1, 0, config.MaxSeqLen));
        var loss = model.Loss(output, tokens.narrow(1, 1, config.MaxSeqLen)).Total;
        loss.backward();
        Recompute.Release();
        return (loss.item<float>(), model.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.data<float>().ToArray()));
    }
}
