using HcService.Contract.Config;
using HcService.Core.Optim;
using HcService.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

public class CheckpointTests
{
    static CheckpointState State(long step) => new()
    {
        Step = step, Tokens = step * 100, SamplerEpoch = 0, SamplerIndex = step, ConsecutiveNonFinite = 0, Spec = "{}",
        RngState = Convert.ToBase64String(get_rng_state().bytes.ToArray()),
    };

    static (Model.LanguageModel Model, TorchSharp.Modules.AdamW Optimizer) Trained(int seed, int steps)
    {
        var model = TestModels.Build(TestModels.Tiny(ConnectionConfig.DynamicHc(2)), seed);
        var optimizer = Optimizers.AdamW(model, lr: 1e-2);
        var tokens = TestModels.Tokens(2, 16, 64);
        for (var i = 0; i < steps; i++) TrainStep.Run(model, optimizer, tokens, tokens);
        return (model, optimizer);
    }

    static byte[] Bytes(Model.LanguageModel m) =>
        m.parameters().SelectMany(p => p.detach().cpu().contiguous().bytes.ToArray()).ToArray();

    [Fact]
    public void RoundTripRestoresWeightsAndOptimizerStateBitwise()
    {
        using var scope = NewDisposeScope();
        var store = new CheckpointStore(RepoPaths.TempDir("ckpt"));
        var (model, optimizer) = Trained(seed: 1, steps: 3);
        var record = store.Save(State(3), model, optimizer, keep: 3);
        Assert.True(CheckpointStore.Verify(record.Path));

        var (other, otherOptimizer) = Trained(seed: 2, steps: 1);
        var state = CheckpointStore.Load(record.Path, other, otherOptimizer);
        Assert.Equal(3, state.Step);
        Assert.Equal(Bytes(model), Bytes(other));

        // The optimizer moments came back too: one more identical step keeps the two models identical.
        var tokens = TestModels.Tokens(2, 16, 64, seed: 99);
        TrainStep.Run(model, optimizer, tokens, tokens);
        TrainStep.Run(other, otherOptimizer, tokens, tokens);
        Assert.Equal(Bytes(model), Bytes(other));
    }

    [Fact]
    public void CorruptedCheckpointIsDetectedAndSkippedForThePreviousOne()
    {
        using var scope = NewDisposeScope();
        var store = new CheckpointStore(RepoPaths.TempDir("corrupt"));
        var (model, optimizer) = Trained(seed: 1, steps: 1);
        var first = store.Save(State(1), model, optimizer, keep: 5);
        var second = store.Save(State(2), model, optimizer, keep: 5);
        Assert.Equal(2, store.LatestVerified()!.Value.Step);

        var bytes = File.ReadAllBytes(second.Path);
        bytes[bytes.Length / 2] ^= 0x01;                     // one flipped bit in the middle of the weights
        File.WriteAllBytes(second.Path, bytes);

        var skipped = new List<string>();
        var latest = store.LatestVerified(skipped.Add);
        Assert.Equal(1, latest!.Value.Step);
        Assert.Equal(first.Path, latest.Value.Path);
        Assert.Single(skipped);
        Assert.Contains("does not match its sha256", skipped[0]);
        Assert.False(CheckpointStore.Verify(second.Path));
    }

    [Fact]
    public void RetentionKeepsTheNewestK()
    {
        using var scope = NewDisposeScope();
        var store = new CheckpointStore(RepoPaths.TempDir("keep"));
        var (model, optimizer) = Trained(seed: 1, steps: 1);
        for (var s = 1; s <= 5; s++) store.Save(State(s), model, optimizer, keep: 2);
        Assert.Equal([5L, 4L], store.List().Select(c => c.Step));
        Assert.Equal(4, Directory.GetFiles(store.Folder).Length);   // two checkpoints, two .sha256, no temporary files
    }

    [Fact]
    public void MixedPrecisionTrainsWithFp32MasterWeights()
    {
        // bf16 compute copy, fp32 master and optimizer: the CUDA recipe, exercised on the CPU (libtorch runs bf16 there).
        using var scope = NewDisposeScope();
        var model = TestModels.Build(Presets.Tiny with { Connection = ConnectionConfig.DynamicHc(2), MaxSeqLen = 64 }, seed: 4);
        var optimizer = Optimizers.AdamW(model, lr: 3e-3);
        using var mixed = new MixedPrecision(model, CPU);
        var batch = TrainabilityTests.FixtureBatch();
        var (inputs, targets) = (batch.narrow(1, 0, 64), batch.narrow(1, 1, 64));
        var first = TrainStep.Run(model, optimizer, _ => (inputs, targets), 1, 1.0, mixed);
        StepResult last = first;
        for (var i = 0; i < 40; i++) last = TrainStep.Run(model, optimizer, _ => (inputs, targets), 1, 1.0, mixed);

        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.All(mixed.Compute.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        Assert.True(last.CrossEntropy < 0.6 * first.CrossEntropy, $"bf16 training: {first.CrossEntropy:F3} -> {last.CrossEntropy:F3}");
        // The compute copy holds the master weights rounded to bf16.
        var (name, master) = model.named_parameters().First(p => p.name.EndsWith("att_proj.weight"));
        var copy = mixed.Compute.named_parameters().First(p => p.name == name).parameter;
        Assert.True(TestModels.MaxAbsDiff(copy.to_type(ScalarType.Float32), master.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)) == 0);
    }
}

public class DivergenceTests
{
    [Fact]
    public void NonFiniteLossSkipsTheUpdateAndLeavesWeightsAndOptimizerAlone()
    {
        using var scope = NewDisposeScope();
        var model = TestModels.Build(TestModels.Tiny(ConnectionConfig.DynamicHc(2)));
        var optimizer = Optimizers.AdamW(model, lr: 1e-2);
        var tokens = TestModels.Tokens(2, 16, 64);
        TrainStep.Run(model, optimizer, tokens, tokens);                         // optimizer state exists
        using (no_grad()) model.Embedding!.weight![tokens[0, 0].item<long>(), 0] = tensor(float.NaN);
        var before = model.parameters().Select(p => p.detach().clone()).ToList();

        var r = TrainStep.Run(model, optimizer, tokens, tokens);

        Assert.False(r.Applied);
        Assert.True(double.IsNaN(r.Loss));
        foreach (var (p, b) in model.parameters().Zip(before))
            Assert.True(p.detach().isnan().logical_or(p.detach() == b).all().item<bool>(), "a skipped step changed the weights");
    }
}
