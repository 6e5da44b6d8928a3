using HcService.Contract.Jobs;
using HcService.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

public class LrScheduleTests
{
    static TrainingPlan Plan(LrScheduleKind kind) => JobPlan.Resolve(new JobSpec
    {
        Model = new() { Preset = "tiny" }, Architecture = "dense", Connection = new() { Type = "residual" },
        Training = new() { TokenBudget = new TokenCount(1024 * 1000), Lr = 1e-3, WarmupSteps = 100, MinLrRatio = 0.1, Schedule = kind.ToString().ToLowerInvariant() },
    }).Training;

    [Fact]
    public void CosineMatchesItsFormulaAtWarmupMidDecayAndFloor()
    {
        var p = Plan(LrScheduleKind.Cosine);
        Assert.Equal(1000, p.Steps);
        Assert.Equal(1e-3 / 100, LrSchedule.At(p, 0), 15);          // warmup start: lr (0 + 1) / W
        Assert.Equal(1e-3 * 50 / 100, LrSchedule.At(p, 49), 15);    // mid-warmup
        Assert.Equal(1e-3, LrSchedule.At(p, 99), 15);               // warmup end: the peak
        Assert.Equal(1e-3, LrSchedule.At(p, 100), 15);              // decay start: p = 0
        Assert.Equal(1e-4 + 0.9e-3 * 0.5, LrSchedule.At(p, 550), 12); // half-way: p = 0.5, cos = 0
        Assert.Equal(1e-4, LrSchedule.At(p, 1000), 15);             // the floor, minLrRatio x lr
        Assert.True(LrSchedule.At(p, 999) > 1e-4 && LrSchedule.At(p, 999) < 1.001e-4);
    }

    [Fact]
    public void LinearAndConstantMatchTheirFormulas()
    {
        var linear = Plan(LrScheduleKind.Linear);
        Assert.Equal(1e-3 - 0.9e-3 * 0.25, LrSchedule.At(linear, 325), 12);   // p = 225 / 900
        Assert.Equal(1e-4, LrSchedule.At(linear, 1000), 15);
        var constant = Plan(LrScheduleKind.Constant);
        Assert.Equal(1e-3, LrSchedule.At(constant, 700), 15);
        Assert.Equal(1e-3 * 10 / 100, LrSchedule.At(constant, 9), 15);          // warmup applies to every schedule
    }

    [Fact]
    public void ClippingBoundsTheGlobalGradientNorm()
    {
        using var scope = NewDisposeScope();
        var model = TestModels.Build(TestModels.Tiny(HcService.Contract.Config.ConnectionConfig.DynamicHc(2)));
        var tokens = TestModels.Tokens(2, 16, 64);
        model.Loss(model.Forward(tokens), tokens).Total.backward();
        using (no_grad()) foreach (var p in model.parameters()) p.grad!.mul_(1000);   // far above the bound
        var before = TrainStep.GlobalNorm(model);

        var reported = TrainStep.ClipGradients(model, 0.5);

        Assert.True(before > 5, $"pre-clip norm {before} should exceed the bound by far for this test to mean anything");
        Assert.Equal(before, reported, 3);
        Assert.InRange(TrainStep.GlobalNorm(model), 0.499, 0.5001);
        Assert.Equal(0.5, TrainStep.ClipGradients(model, 1.0), 3);   // below the bound: unchanged
        Assert.InRange(TrainStep.GlobalNorm(model), 0.499, 0.5001);
    }
}
