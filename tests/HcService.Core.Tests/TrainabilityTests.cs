using System.Text;
using HcService.Contract.Config;
using HcService.Core.Optim;
using HcService.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>Every connection type must be trainable: on a fixed batch of real text (a Moby-Dick excerpt, bytes as
/// tokens) a tiny model drives the loss far below its initial value.</summary>
public class TrainabilityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    public static TheoryData<string> Variants() => new(VariantConfigs.Keys);

    static readonly Dictionary<string, ModelConfig> VariantConfigs = new()
    {
        ["residual"] = Tiny(ConnectionConfig.Residual),
        ["post-norm"] = Tiny(new ConnectionConfig { Type = ConnectionType.PostNorm }),
        ["shc-x4"] = Tiny(ConnectionConfig.StaticHc(4)),
        ["dhc-x4"] = Tiny(ConnectionConfig.DynamicHc(4)),
        ["dhc-x2-notanh"] = Tiny(ConnectionConfig.DynamicHc(2, tanh: false)),
        ["dfc-m4"] = Tiny(ConnectionConfig.Frac(4)),
        ["sfc-m2"] = Tiny(ConnectionConfig.Frac(2, dynamic: false)),
        ["mhc-x4"] = Tiny(ConnectionConfig.Mhc(4)),
        ["mhc-lite-x4"] = Tiny(ConnectionConfig.MhcLite(4)),
        ["moe-residual"] = Tiny(ConnectionConfig.Residual) with { Architecture = Architecture.Moe },
        ["moe-dhc-x4"] = Tiny(ConnectionConfig.DynamicHc(4)) with { Architecture = Architecture.Moe, Norm = NormKind.RmsNorm, QkNorm = true },
    };

    static ModelConfig Tiny(ConnectionConfig c) => Presets.Tiny with { Connection = c, MaxSeqLen = 64 };

    /// <summary>[4, 65] windows of the fixture's bytes.</summary>
    internal static Tensor FixtureBatch(int batch = 4, int window = 65)
    {
        var bytes = File.ReadAllBytes(TestModels.FixturePath("moby-dick-excerpt.txt"));
        Assert.True(bytes.Length >= batch * window, "fixture too short");
        Assert.Contains("whale", Encoding.UTF8.GetString(bytes), StringComparison.OrdinalIgnoreCase);
        var stride = bytes.Length / batch;
        var data = new long[batch * window];
        for (var b = 0; b < batch; b++)
            for (var t = 0; t < window; t++) data[b * window + t] = bytes[b * stride + t];
        return tensor(data).reshape(batch, window);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void LossFallsFarBelowItsInitialValue(string variant)
    {
        using var scope = NewDisposeScope();
        var model = TestModels.Build(VariantConfigs[variant], seed: 21);
        var batch = FixtureBatch();
        var inputs = batch.narrow(1, 0, 64);
        var targets = batch.narrow(1, 1, 64);
        var optimizer = Optimizers.AdamW(model, lr: 3e-3, weightDecay: 0.1);

        var first = TrainStep.Run(model, optimizer, inputs, targets);
        StepResult last = first;
        for (var step = 1; step < 100; step++) last = TrainStep.Run(model, optimizer, inputs, targets);

        output.WriteLine($"{variant}: cross-entropy {first.CrossEntropy:F3} -> {last.CrossEntropy:F3} in 100 steps");
        // Initial loss ~ ln 256 = 5.55 (uniform over bytes); a model that learns memorises the batch.
        Assert.InRange(first.CrossEntropy, 5.0, 6.2);
        Assert.True(last.CrossEntropy < 0.2 * first.CrossEntropy,
            $"{variant}: cross-entropy went from {first.CrossEntropy:F3} to only {last.CrossEntropy:F3}");
        Assert.True(double.IsFinite(last.GradNorm));
    }
}
