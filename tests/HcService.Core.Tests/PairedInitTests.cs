using HcService.Contract.Config;
using HcService.Contract.Jobs;
using HcService.Core.Training;
using TorchSharp;
using static HcService.Core.Tests.TestModels;

namespace HcService.Core.Tests;

/// <summary>
/// A comparison pairs an HC run with its baseline by seed: the same seed must give every connection type the same
/// sublayer weights (embedding, attention, MLP, experts, router, head), so that the runs differ in the connection alone.
/// </summary>
[Collection(GlobalTorchRng.Name)]
public class PairedInitTests
{
    static Dictionary<string, torch.Tensor> SublayerWeights(Model.LanguageModel m) =>
        m.named_parameters().Where(p => !p.name.Contains("_conn.", StringComparison.Ordinal))
            .ToDictionary(p => p.name, p => p.parameter.detach().clone());

    public static TheoryData<ModelConfig> Presets() =>
    [
        Tiny(ConnectionConfig.Residual) with { Init = InitKind.Normal },
        Tiny(ConnectionConfig.Residual) with { Init = InitKind.Mitchell },
        Tiny(ConnectionConfig.Residual, Architecture.Moe) with { Init = InitKind.Mitchell },
    ];

    [Theory]
    [MemberData(nameof(Presets))]
    public void TheSameSeedGivesEveryConnectionTypeTheSameSublayerWeights(ModelConfig baseline)
    {
        using var scope = torch.NewDisposeScope();
        var reference = SublayerWeights(Build(baseline, seed: 11));
        var others = new[]
        {
            ConnectionConfig.DynamicHc(4), ConnectionConfig.StaticHc(4), ConnectionConfig.DynamicHc(2),
            new ConnectionConfig { Type = ConnectionType.PostNorm, Rate = 1 },
            ConnectionConfig.Frac(4), ConnectionConfig.Mhc(4), ConnectionConfig.MhcLite(4),
        };
        foreach (var connection in others)
        {
            var weights = SublayerWeights(Build(baseline with { Connection = connection }, seed: 11));
            Assert.Equal(reference.Keys.Order(), weights.Keys.Order());
            foreach (var (name, w) in reference)
                Assert.True(w.eq(weights[name]).all().item<bool>(), $"{connection.Label}: {name} differs from the residual model's");
        }
    }

    sealed class FirstValidation : IMetricsSink
    {
        public readonly Dictionary<string, double> Loss = [];
        public void OnStep(StepMetrics m) { }
        public void OnValidation(ValidationMetrics m) { if (m.Step == 0) Loss[m.Dataset] = m.Loss; }
        public void OnCheckpoint(CheckpointRecord c) { }
    }

    static Dictionary<string, double> StepZeroValidation(string connection)
    {
        var spec = JobSpec.Parse($$"""
            { "model": { "preset": "tiny" }, "architecture": "dense", "connection": {{connection}},
              "training": { "tokenBudget": 1024, "seed": 5, "evalTokens": "4K" } }
            """);
        var sink = new FirstValidation();
        var result = new TrainingRun(spec, JobPlan.Resolve(spec), new RunOptions(RepoPaths.DataRoot, RepoPaths.TempDir("paired")), [sink]).Run();
        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        return sink.Loss;
    }

    [Fact]
    public void AnHcRunStartsFromItsBaselinesLossUnlessThePapersRescalingIsAsked()
    {
        var residual = StepZeroValidation("""{ "type": "residual" }""");
        var matched = StepZeroValidation("""{ "type": "dynamic-hc", "rate": 4 }""");
        var rescaled = StepZeroValidation("""{ "type": "dynamic-hc", "rate": 4, "scaleOutputInit": true }""");
        Assert.Equal(2, residual.Count);
        foreach (var (set, loss) in residual)
        {
            // Equal up to the final norm's epsilon (the reduced state is n times the residual one: docs/hc-math.md 3.4).
            Assert.True(Math.Abs(matched[set] - loss) <= 5e-3, $"{set}: residual {loss:F4}, DHC x4 {matched[set]:F4}");
            Assert.True(Math.Abs(rescaled[set] - loss) > 5e-3, $"{set}: the rescaled init should start elsewhere ({rescaled[set]:F4} vs {loss:F4})");
        }
    }
}
