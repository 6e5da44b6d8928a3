using HcService.Contract.Config;
using HcService.Contract.Jobs;
using HcService.Core.Connections;
using HcService.Core.Model;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>training.recompute changes what backward keeps, never what it computes: for every connection type, the loss
/// with recompute = hc or block equals the one without, bitwise, and every parameter's gradient is the same sum (to 1e-9
/// in float64; in float32 as close to float64 as without recomputation), with dropout on (so that block recomputation
/// must replay the same masks); and the recomputing nodes really ran.</summary>
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
        // Five blocks: hc's stream replay keeps the streams every two (segments [0, 1], [2, 3], [4]: the embedding, a kept
        // state, a short last segment) and replays up to three mixes.
        var config = TestModels.Tiny(connection, arch) with { Dropout = 0.1, Layers = 5 };
        // Like with like: hc runs on tensor ops (its stream replay), so its reference does too; block recomputes
        // whatever the blocks run, here the fused CPU kernels where they apply.
        var kernels = mode == RecomputeMode.Hc ? HcService.Core.Native.ConnectionKernels.Tensor : HcService.Core.Native.ConnectionKernels.Auto;
        var reference = Step(config, RecomputeMode.None, kernels);
        var before = Recompute.Recomputations;
        var recomputed = Step(config, mode, kernels);
        var ran = Recompute.Recomputations - before;

        // Recomputing nodes ran where there is something to recompute: every block under block; under hc, for n copies of
        // the state (HC, mHC, mHC-lite) each connection's width and link nodes of the stream replay (two per sublayer), for
        // dynamic FC each connection's weights; none for residual and post-norm.
        var expected = mode == RecomputeMode.Block ? config.Layers
            : connection.CopiesStreams ? 4 * config.Layers
            : connection is { IsFrac: true, Dynamic: true } ? 2 * config.Layers
            : 0;
        Assert.Equal(expected, ran);

        // The forward is the same ops on the same values: the same loss, bitwise.
        Assert.Equal(reference.Loss, recomputed.Loss);
        Assert.Equal(reference.Grads.Keys.Order(), recomputed.Grads.Keys.Order());
        // The gradients are the same sums, possibly in another order (the stream replay's gradients of a kept state arrive
        // from each node of its segment separately): in float64 they agree to 1e-9 of each gradient's largest value (a
        // wrong or missing term is 1e-3 or more), and in float32 they are as close to the float64 gradients as those
        // without recomputation (4x their error, floor 2e-5; 1e-4 for a scalar, a sum over every token with cancellation).
        var exact = Step(config, RecomputeMode.None, kernels, ScalarType.Float64);
        var exactRecomputed = Step(config, mode, kernels, ScalarType.Float64);
        // A gradient that is zero in exact arithmetic is measured against a millionth of the model's largest one: mHC's first
        // A_r mixes n equal copies, which any doubly stochastic matrix leaves as they are, so its logits' gradient is
        // rounding noise (1e-22 in float64) in either mode.
        var floor = 1e-6 * exact.Grads.Values.Max(v => v.Max(Math.Abs));
        var bitwise = 0;
        foreach (var (name, g) in exact.Grads)
        {
            var scale = Math.Max(g.Max(Math.Abs), floor);
            double Error(double[] other) => g.Zip(other, (a, b) => Math.Abs(a - b)).Max() / scale;
            var error64 = Error(exactRecomputed.Grads[name]);
            Assert.True(error64 <= 1e-9, $"{label} {mode}: {name} differs in float64 by {error64:E2} of its largest gradient");
            var (noneError, recomputedError) = (Error(reference.Grads[name]), Error(recomputed.Grads[name]));
            Assert.True(recomputedError <= Math.Max(4 * noneError, g.Length == 1 ? 1e-4 : 2e-5),
                $"{label} {mode}: {name} is {recomputedError:E2} of its largest gradient from float64; without recomputation {noneError:E2}");
            if (reference.Grads[name].SequenceEqual(recomputed.Grads[name])) bitwise++;
        }
        output.WriteLine($"{label} {mode}: {ran} recomputing nodes; {bitwise} of {reference.Grads.Count} float32 gradients bitwise equal");
    }

    /// <summary>One forward and backward of a model with every parameter moved off its init (so that the dynamic weights
    /// depend on the input), in training mode: the loss and each gradient.</summary>
    static (double Loss, Dictionary<string, double[]> Grads) Step(ModelConfig config, RecomputeMode mode,
        HcService.Core.Native.ConnectionKernels kernels, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var model = TestModels.Build(config);
        using (no_grad())
        {
            var g = new Generator(11);
            foreach (var p in model.parameters()) p.add_(randn(p.shape, generator: g) * 0.05);
        }
        if (dtype != ScalarType.Float32) model.to(dtype);
        model.train();
        model.Recompute = mode;
        model.ConnectionKernels = kernels;
        var tokens = TestModels.Tokens(4, config.MaxSeqLen + 1, config.Vocab);
        manual_seed(5);   // the dropout masks
        var output = model.Forward(tokens.narrow(1, 0, config.MaxSeqLen));
        var loss = model.Loss(output, tokens.narrow(1, 1, config.MaxSeqLen)).Total;
        loss.backward();
        Recompute.Release();
        return (loss.to_type(ScalarType.Float64).item<double>(), model.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.to_type(ScalarType.Float64).data<double>().ToArray()));
    }
}
