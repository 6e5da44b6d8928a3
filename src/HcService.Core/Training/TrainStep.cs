using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Training;

/// <summary>What one optimizer step reports (host values, read once per step).</summary>
public sealed record StepResult(double Loss, double CrossEntropy, double GradNorm, double? LoadBalancing, double? RouterZ,
    IReadOnlyList<long[]> ExpertTokens);

/// <summary>
/// One optimizer step: forward, loss, backward, global-norm gradient clipping, update, all inside one dispose
/// scope so that no tensor of the step outlives it (without that a CPU run exhausts memory within minutes).
/// </summary>
public static class TrainStep
{
    /// <param name="inputs">[B, T] token ids.</param>
    /// <param name="targets">[B, T] next-token ids.</param>
    /// <param name="gradClip">Max global L2 norm of the gradients; 0 or less disables clipping.</param>
    public static StepResult Run(LanguageModel model, optim.Optimizer optimizer, Tensor inputs, Tensor targets, double gradClip = 1.0)
    {
        using var scope = NewDisposeScope();
        model.train();
        optimizer.zero_grad();
        var output = model.Forward(inputs);
        var loss = model.Loss(output, targets);
        loss.Total.backward();
        var gradNorm = gradClip > 0
            ? nn.utils.clip_grad_norm_(model.parameters(), gradClip)
            : GlobalNorm(model);
        optimizer.step();
        return new StepResult(
            loss.Total.item<float>(), loss.CrossEntropy.item<float>(), gradNorm,
            loss.LoadBalancing?.item<float>(), loss.RouterZ?.item<float>(),
            output.Moe.Select(m => m.ExpertTokens).ToList());
    }

    static double GlobalNorm(LanguageModel model)
    {
        using var scope = NewDisposeScope();
        var grads = model.parameters().Where(p => p.grad is not null).Select(p => p.grad!.square().sum()).ToArray();
        return grads.Length == 0 ? 0 : stack(grads).sum().sqrt().item<float>();
    }
}
