using HcService.Contract.Jobs;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

/// <summary>A module whose backward can recompute what its forward would otherwise keep (training.recompute).</summary>
public interface IRecomputable
{
    /// <summary>Set by the model for every module: none, hc or block.</summary>
    RecomputeMode Recompute { set; }
}

/// <summary>
/// Recomputation in backward (training.recompute; docs/hc-math.md section 6.5), as TorchSharp custom autograd functions:
/// the forward runs without building a graph and saves only its inputs; the backward runs the same forward again with
/// a graph and differentiates it. Same ops, same values: the losses and gradients equal those of the unrecomputed model
/// (RecomputeTests), at the price of one more forward of what is recomputed.
/// <list type="bullet">
/// <item><see cref="Weights"/> (hc): a connection's input-dependent weights (the norm and projection of the streams);
/// the streams themselves stay saved by the matmuls that mix them.</item>
/// <item><see cref="Checkpoint"/> (block): a whole block; only its input is kept (activation checkpointing).</item>
/// </list>
/// </summary>
public static class Recompute
{
    /// <summary>Whether a forward should build a recomputing node: training with a graph.</summary>
    public static bool Applies(bool training) => training && is_grad_enabled();

    /// <summary><paramref name="weights"/>(h) as a node that saves h and recomputes the weights in backward.
    /// <paramref name="parameters"/> are every tensor <paramref name="weights"/> reads besides h.</summary>
    public static Tensor[] Weights(Func<Tensor, Tensor[]> weights, Tensor h, IReadOnlyList<Tensor> parameters) =>
        Node(x => weights(x[0]), [h], parameters, rngState: null);

    /// <summary><paramref name="body"/>(inputs) as a node that saves only <paramref name="inputs"/> and runs the body again in
    /// backward (no random numbers may be drawn in it). <paramref name="parameters"/> are the other tensors it reads.</summary>
    public static Tensor[] Node(Func<Tensor[], Tensor[]> body, Tensor[] inputs, IReadOnlyList<Tensor> parameters) =>
        Node(body, inputs, parameters, rngState: null);

    /// <summary><paramref name="block"/>(h) as a node that saves h and runs the block again in backward, with the random
    /// generator's state of the first run (the same dropout masks).</summary>
    public static Tensor Checkpoint(Func<Tensor, Tensor> block, Tensor h, IReadOnlyList<Tensor> parameters)
    {
        // In a scope of its own: TorchSharp makes an unused stand-in of each output of a custom function in the current
        // scope, which would otherwise live (a block output's size, on CUDA real memory) to the end of the forward.
        using var scope = NewDisposeScope();
        return Node(x => [block(x[0])], [h], parameters, random.get_rng_state().DetachFromDisposeScope())[0].MoveToOuterDisposeScope();
    }

    static Tensor[] Node(Func<Tensor[], Tensor[]> body, Tensor[] inputs, IReadOnlyList<Tensor> parameters, Tensor? rngState) =>
        [.. RecomputedFunction.apply([new Body(body, inputs.Length, parameters, rngState), .. inputs, .. parameters])];

    /// <summary>What a node runs: the function of its inputs (the first <paramref name="Inputs"/> tensors, which it saves),
    /// the other tensors it reads (which receive their gradients through the node), and the generator state to run it
    /// again with (null: it draws no random numbers).</summary>
    sealed record Body(Func<Tensor[], Tensor[]> Run, int Inputs, IReadOnlyList<Tensor> Parameters, Tensor? RngState);

    /// <summary>Gradients handed to the autograd engine by the last backward on this thread: the engine holds its own
    /// reference once a backward returns, so they are released at the next one on the same thread (or by
    /// <see cref="Release"/>), not kept to the step's end. Per thread: another thread's backward may not have returned
    /// yet, and its engine may not have taken its references.</summary>
    [ThreadStatic] static List<Tensor>? handedOver;

    /// <summary>Recomputing backwards run so far (tests check that a mode really recomputes).</summary>
    internal static long Recomputations => Interlocked.Read(ref recomputations);
    static long recomputations;

    /// <summary>Counts one recomputing backward (<see cref="Recomputations"/>).</summary>
    internal static void Count() => Interlocked.Increment(ref recomputations);

    /// <summary>Gradients a custom backward returns to the engine, released at the next one (<see cref="Release"/>).</summary>
    internal static void HandOver(IEnumerable<Tensor> grads) => (handedOver ??= []).AddRange(grads.Where(g => g is not null));

    /// <summary>Releases what the last custom backward on this thread handed to the engine (after loss.backward()).</summary>
    public static void Release()
    {
        if (handedOver is null) return;
        foreach (var t in handedOver) t.Dispose();
        handedOver.Clear();
    }

    sealed class RecomputedFunction : autograd.MultiTensorFunction<RecomputedFunction>
    {
        public override string Name => "HcRecompute";

        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var body = (Body)vars[0];
            var inputs = vars.Skip(1).Take(body.Inputs).Cast<Tensor>().ToArray();
            ctx.save_for_backward([.. inputs]);
            ctx.save_data("body", body);
            // No zero-filled stand-ins for unused outputs: backward makes its own (TorchSharp's stand-ins live in the
            // forward's dispose scope and would be gone by then).
            ctx.set_materialize_grads(false);
            // Contiguous: an output may be a view of another (A_m and A_r are columns of one matrix), which a custom
            // function's outputs must not be.
            return [.. body.Run(inputs).Select(t => t.contiguous())];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
        {
            Release();
            Count();
            var body = (Body)ctx.get_data("body");
            List<Tensor> result;
            using (var scope = NewDisposeScope())
            {
                var saved = ctx.get_saved_variables().Select(t => t.detach().requires_grad_(true)).ToArray();
                Tensor[] outputs;
                using (enable_grad())
                {
                    if (body.RngState is { } state)
                    {
                        using var now = random.get_rng_state();
                        random.set_rng_state(state);
                        try { outputs = body.Run(saved); }
                        finally { random.set_rng_state(now); }
                    }
                    else outputs = body.Run(saved);
                }
                var grads = outputs.Select((o, i) => gradOutputs[i] is { IsInvalid: false } g ? g : zeros_like(o)).ToList();
                var inputs = new List<Tensor>(saved);
                inputs.AddRange(body.Parameters);
                var inputGrads = autograd.grad(outputs, inputs, grads, allow_unused: true);
                result = [null!, .. inputGrads.Select(g => g is null || g.IsInvalid ? null! : g)];
                foreach (var g in result) if (g is not null) scope.Detach(g);
            }
            foreach (var g in gradOutputs) g?.Dispose();
            HandOver(result);
            return result;
        }
    }
}
