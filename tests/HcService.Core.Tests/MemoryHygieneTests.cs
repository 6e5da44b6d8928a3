using HcService.Contract.Config;
using HcService.Core.Optim;
using HcService.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

public class MemoryHygieneTests
{
    /// <summary>The number of live tensors (on this thread) is the same after step 2 and after step 22: one
    /// training step leaves nothing behind once gradients and optimizer state exist.</summary>
    [Theory]
    [InlineData(ConnectionType.Residual, Architecture.Dense)]
    [InlineData(ConnectionType.DynamicHc, Architecture.Dense)]
    [InlineData(ConnectionType.DynamicHc, Architecture.Moe)]
    public void LiveTensorCountStaysFlatAcrossTrainingSteps(ConnectionType type, Architecture arch)
    {
        var connection = new ConnectionConfig { Type = type, Rate = type == ConnectionType.DynamicHc ? 4 : 1 };
        var model = TestModels.Build(Presets.Tiny with { Connection = connection, Architecture = arch, MaxSeqLen = 64 }, seed: 2);
        var optimizer = Optimizers.AdamW(model, lr: 1e-3);
        var batch = TrainabilityTests.FixtureBatch();
        var inputs = batch.narrow(1, 0, 64);
        var targets = batch.narrow(1, 1, 64);

        TrainStep.Run(model, optimizer, inputs, targets);
        TrainStep.Run(model, optimizer, inputs, targets);
        var afterWarmup = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 20; i++) TrainStep.Run(model, optimizer, inputs, targets);
        var afterTwenty = DisposeScopeManager.Statistics.ThreadTotalLiveCount;

        Assert.True(afterWarmup > 0);
        Assert.Equal(afterWarmup, afterTwenty);
    }
}
