using static TorchSharp.torch;

namespace HcService.Core.Model;

/// <summary>Small wrappers over TorchSharp operations whose managed binding needs care.</summary>
public static class TorchOps
{
    // TorchSharp 0.107's Tensor.baddbmm passes (self, batch1, batch2) to a native function declared
    // (batch1, batch2, mat), so `input.baddbmm(b1, b2)` computes b2 + input @ b1. Which order is right is probed
    // once with 1x1x1 tensors, so a fixed binding keeps working.
    static readonly Lazy<bool> BaddbmmArgumentsRotated = new(() =>
    {
        using var scope = NewDisposeScope();
        var r = zeros(1, 1, 1).baddbmm(full(1, 1, 1, 2f), full(1, 1, 1, 3f)).item<float>();
        return r switch
        {
            6f => false,   // 0 + 2 * 3
            3f => true,    // 3 + 0 * 2
            _ => throw new InvalidOperationException($"baddbmm probe returned {r}: expected 6 (or 3 for the known argument rotation)"),
        };
    });

    /// <summary>input + batch1 @ batch2 in one fused op: [X, N, D] + [X, N, K] @ [X, K, D].
    /// Its backward is two bmm's, with no broadcast product materialised.</summary>
    public static Tensor BaddBmm(Tensor input, Tensor batch1, Tensor batch2) =>
        BaddbmmArgumentsRotated.Value ? batch1.baddbmm(batch2, input) : input.baddbmm(batch1, batch2);
}
