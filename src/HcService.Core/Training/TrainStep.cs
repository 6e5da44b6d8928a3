using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Training;

/// <summary>What one optimizer step reports (host values, read once per step).</summary>
/// <param name="Applied">False when the loss was not finite: the update was skipped.</param>
public sealed record StepResult(double Loss, double CrossEntropy, double GradNorm, double? LoadBalancing, double? RouterZ,
    IReadOnlyList<long[]> ExpertTokens, bool Applied = true);

/// <summary>
/// One optimizer step: forward and backward over the micro-batches (gradient accumulation, each loss scaled by
/// 1 / accumulation so the gradient is the batch mean), global-norm clipping, update. Each micro-batch runs in its own
/// dispose scope, so no tensor of the step outlives it (without that a CPU run exhausts memory within minutes).
/// A non-finite loss skips the update, leaving weights and optimizer state untouched.
/// With <paramref name="mixed"/> the forward and backward run on its bf16 copy and the update on the fp32 master.
/// </summary>
public static class TrainStep
{
    public static StepResult Run(LanguageModel model, optim.Optimizer optimizer, Tensor inputs, Tensor targets, double gradClip = 1.0) =>
        Run(model, optimizer, _ => (inputs, targets), 1, gradClip);

    /// <summary>The next micro-batch of a sampler as (inputs, next-token targets), each [batch, seqLen], on <paramref name="device"/>.</summary>
    public static (Tensor Inputs, Tensor Targets) NextBatch(Data.WindowSampler sampler, int batch, int seqLen, Device device)
    {
        var windows = tensor(sampler.Next(batch)).reshape(batch, seqLen + 1).to(device);
        return (windows.narrow(1, 0, seqLen), windows.narrow(1, 1, seqLen));
    }

    public static StepResult Run(LanguageModel master, optim.Optimizer optimizer, Func<int, (Tensor Inputs, Tensor Targets)> microBatch,
        int accumulation, double gradClip, MixedPrecision? mixed = null)
    {
        using var stepScope = NewDisposeScope();   // clipping and the update make temporaries too
        var compute = mixed?.Compute ?? master;
        compute.train();
        optimizer.zero_grad();
        compute.zero_grad();
        double loss = 0, ce = 0, lb = 0, z = 0;
        var hasMoe = false;
        List<long[]>? expertTokens = null;
        for (var a = 0; a < accumulation; a++)
        {
            using var scope = NewDisposeScope();
            var (inputs, targets) = microBatch(a);
            var output = compute.Forward(inputs);
            var parts = compute.Loss(output, targets);
            (parts.Total / accumulation).backward();
            HcService.Core.Connections.Recompute.Release();
            loss += parts.Total.item<float>() / accumulation;
            ce += parts.CrossEntropy.item<float>() / accumulation;
            if (parts.LoadBalancing is not null)
            {
                hasMoe = true;
                lb += parts.LoadBalancing.item<float>() / accumulation;
                z += parts.RouterZ!.item<float>() / accumulation;
                expertTokens ??= output.Moe.Select(m => new long[m.ExpertTokens.Length]).ToList();
                for (var l = 0; l < output.Moe.Count; l++)
                    for (var e = 0; e < output.Moe[l].ExpertTokens.Length; e++) expertTokens[l][e] += output.Moe[l].ExpertTokens[e];
            }
        }

        var applied = double.IsFinite(loss);
        double gradNorm = double.NaN;
        if (applied)
        {
            mixed?.GradientsToMaster();
            gradNorm = ClipGradients(master, gradClip);
            applied = double.IsFinite(gradNorm);
        }
        if (applied)
        {
            optimizer.step();
            mixed?.WeightsToCompute();
        }
        optimizer.zero_grad();
        return new StepResult(loss, ce, gradNorm, hasMoe ? lb : null, hasMoe ? z : null, expertTokens ?? [], applied);
    }

    /// <summary>Scales the gradients so that their global L2 norm is at most <paramref name="maxNorm"/> (0: no clipping);
    /// returns the norm before clipping.</summary>
    public static double ClipGradients(LanguageModel model, double maxNorm) =>
        maxNorm > 0 ? nn.utils.clip_grad_norm_(model.parameters(), maxNorm) : GlobalNorm(model);

    public static double GlobalNorm(LanguageModel model)
    {
        using var scope = NewDisposeScope();
        var grads = model.parameters().Where(p => p.grad is not null).Select(p => p.grad!.square().sum()).ToArray();
        return grads.Length == 0 ? 0 : stack(grads).sum().sqrt().item<float>();
    }
}

/// <summary>
/// bf16 mixed precision by hand (TorchSharp has no autocast): the optimizer owns fp32 master weights; a bf16 copy of
/// the model runs forward and backward (bf16 matmuls and attention; the model's norms, router, softmax-in-loss and
/// loss upcast to fp32 themselves). After backward the bf16 gradients are copied into the master's fp32 .grad; after
/// the update the master weights are copied back into the bf16 copy.
/// </summary>
public sealed class MixedPrecision : IDisposable
{
    readonly List<(TorchSharp.Modules.Parameter Master, TorchSharp.Modules.Parameter Compute)> pairs;
    public LanguageModel Compute { get; }

    public MixedPrecision(LanguageModel master, Device device)
    {
        Compute = new LanguageModel(master.Config);
        Compute.to(ScalarType.BFloat16).to(device);
        var computeParams = Compute.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        pairs = master.named_parameters().Select(p => (p.parameter, computeParams[p.name])).ToList();
        WeightsToCompute();
    }

    public void WeightsToCompute()
    {
        using var _ = no_grad();
        foreach (var (m, c) in pairs) c.copy_(m);
    }

    public void GradientsToMaster()
    {
        using var _ = no_grad();
        foreach (var (m, c) in pairs)
        {
            if (c.grad is null) continue;
            if (m.grad is null) m.grad = c.grad.to(m.dtype);
            else m.grad.copy_(c.grad);
        }
        Compute.zero_grad();
    }

    public void Dispose() => Compute.Dispose();
}
