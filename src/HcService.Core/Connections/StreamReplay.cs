using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

// Axes: X tokens (batch x time), N streams, D width.

/// <summary>
/// training.recompute = hc for the connections over n copies of the state (HC, mHC, mHC-lite; docs/hc-math.md section
/// 6.5): the streams are kept only at the start of each segment of a few blocks, and every other H_k a connection needs in
/// backward is replayed from there: H_{k+1} = A_r,k^T H_k + B_k y_k needs only the A_r, B and sublayer outputs y of the
/// connections in between, which backward keeps anyway (A_r and B are small). The first segment starts from the embedding
/// itself (the n copies are an expand of it), so a model of L blocks keeps about L / s copies of the streams, not L.
///
/// Each connection is two nodes (TorchSharp custom autograd functions) whose input H_k is used but not saved:
/// <list type="bullet">
/// <item>width: [x = A_m^T H, A_r, B] from H (the weights made again in backward: norm, projection, Sinkhorn...);</item>
/// <item>link: H_{k+1} = A_r^T H + B y.</item>
/// </list>
/// In backward the link node replays H_k from its segment's start (no graph; k - start mixes) and leaves it to the
/// width node of the same connection, which runs next. Every op is the forward's op on the same values, so the replayed
/// streams equal the forward's bitwise; the gradients equal those without recomputation up to the order of float sums
/// (RecomputeTests).
/// </summary>
public static class StreamReplay
{
    /// <summary>Whether <see cref="Run"/> replaces the per-block forward: recompute = hc, n copies, training with a graph.</summary>
    public static bool Applies(HcService.Contract.Jobs.RecomputeMode mode, HcService.Contract.Config.ConnectionConfig c, bool training) =>
        mode == HcService.Contract.Jobs.RecomputeMode.Hc && c.CopiesStreams && Recompute.Applies(training);

    /// <summary>Blocks per segment, about sqrt(L): L / s kept copies of the streams against at most 2 s - 1 mixes replayed
    /// per connection in backward (1 for L &lt;= 2, 2 for L = 3..6, 3 for L = 7..12, 4 for L = 13..20 such as OLMo-1B's 16).</summary>
    public static int SegmentBlocks(int layers) => Math.Max(1, (int)Math.Round(Math.Sqrt(layers)));

    /// <summary>One sublayer of the trunk: its connection, norm and body.</summary>
    public readonly record struct Step(IStreamMixing Connection, Norm Norm, Func<Tensor, Tensor> Sublayer);

    /// <summary>Runs <paramref name="steps"/> on the streams made from the embedding <paramref name="e_BTD"/> (n copies)
    /// and returns the last state [B, T, N, D].</summary>
    public static Tensor Run(Tensor e_BTD, int rate, IReadOnlyList<Step> steps, int segmentBlocks)
    {
        using var scope = NewDisposeScope();
        var (B, T, D) = (e_BTD.shape[0], e_BTD.shape[1], e_BTD.shape[2]);
        var X = B * T;
        var h_XND = Expand(e_BTD, rate);
        var start = e_BTD;                       // the segment's kept tensor: the embedding, then a state H_k
        var fromEmbedding = true;
        var links = new List<Tensor>();          // A_r^T, B, y of each connection since the segment's start
        var segment = new Segment();
        for (var k = 0; k < steps.Count; k++)
        {
            if (k > 0 && k % (2 * segmentBlocks) == 0)
            {
                if (!fromEmbedding) start.Dispose();   // the handle; the nodes that saved it keep its storage
                (start, fromEmbedding) = (h_XND, false);
                links.Clear();
                segment = new Segment();
            }
            var (connection, norm, sublayer) = steps[k];
            Tensor[] replay = [start, .. links];
            var w = Apply(new Spec(connection, segment, k, fromEmbedding, rate, 0, replay.Length), h_XND, [], replay);
            var y_X1D = sublayer(norm.forward(w[0].view(B, T, D))).reshape(X, 1, D);
            var next = Apply(new Spec(null, segment, k, fromEmbedding, rate, 3, replay.Length), h_XND, [w[1], w[2], y_X1D], replay)[0];
            links.AddRange([w[1], w[2], y_X1D]);
            // Nothing keeps H_k but the handle (unless it starts the segment): free it now, not at the end of the forward.
            if (!ReferenceEquals(h_XND, start)) h_XND.Dispose();
            h_XND = next;
        }
        return h_XND.view(B, T, rate, D).MoveToOuterDisposeScope();
    }

    /// <summary>The n copies of the embedding as the first connection's input, [X, N, D] (the op the per-block forward runs).</summary>
    static Tensor Expand(Tensor e_BTD, long rate)
    {
        var (B, T, D) = (e_BTD.shape[0], e_BTD.shape[1], e_BTD.shape[2]);
        return e_BTD.unsqueeze(2).expand(B, T, rate, D).reshape(B * T, rate, D);
    }

    /// <summary>Replays H_k from a segment's start and the links since (A_r^T, B, y per connection), without a graph.</summary>
    static Tensor Replay(IReadOnlyList<Tensor> replay, bool fromEmbedding, long rate)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var h = fromEmbedding ? Expand(replay[0], rate) : replay[0].detach();
        for (var i = 1; i < replay.Count; i += 3)
        {
            // At most three states alive at a time, whatever the segment's length.
            using var mixed = replay[i].bmm(h);
            var next = TorchOps.BaddBmm(mixed, replay[i + 1], replay[i + 2]);
            h.Dispose();
            h = next;
        }
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>What one node is: a width node (<paramref name="Connection"/> set) or a link node, the k-th connection of a
    /// segment, how many of its inputs are the link's operands and how many the replay's.</summary>
    sealed record Spec(IStreamMixing? Connection, Segment Segment, int Index, bool FromEmbedding, long Rate, int Operands, int Replays)
    {
        /// <summary>The tensors the width node reads besides its inputs (the connection's parameters), in a fixed order.</summary>
        public Tensor[] Parameters { get; } = Connection is null ? [] : [.. ((nn.Module)Connection).parameters()];
    }

    /// <summary>The state a link node replayed in backward, left for the width node of the same connection.</summary>
    sealed class Segment
    {
        (int Index, Tensor H)? left;

        public void Leave(int index, Tensor h)
        {
            left?.H.Dispose();
            left = (index, h);
        }

        public Tensor? Take(int index)
        {
            if (left is not { } l) return null;
            left = null;
            if (l.Index == index) return l.H;
            l.H.Dispose();
            return null;
        }
    }

    static Tensor[] Apply(Spec spec, Tensor h, Tensor[] operands, Tensor[] replay)
    {
        // In a scope of its own: TorchSharp's unused stand-in of each output (an empty_like) goes with it.
        using var scope = NewDisposeScope();
        var outputs = StreamFunction.apply([spec, h, .. operands, .. replay, .. spec.Parameters]);
        foreach (var o in outputs) o.MoveToOuterDisposeScope();
        return [.. outputs];
    }

    /// <summary>What a node computes from H (and for a link, A_r^T, B, y): the same ops as <see cref="StreamMixing.Forward"/>.</summary>
    static Tensor[] Body(Spec spec, Tensor h_XND, Tensor[] operands)
    {
        if (spec.Connection is null) return [TorchOps.BaddBmm(operands[0].bmm(h_XND), operands[1], operands[2])];
        var (amT, arT, beta) = spec.Connection.Weights(h_XND);
        return [amT.bmm(h_XND), arT, beta];
    }

    sealed class StreamFunction : autograd.MultiTensorFunction<StreamFunction>
    {
        public override string Name => "HcStreamReplay";

        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var spec = (Spec)vars[0];
            var h = (Tensor)vars[1];
            var operands = vars.Skip(2).Take(spec.Operands).Cast<Tensor>().ToArray();
            var replay = vars.Skip(2 + spec.Operands).Take(spec.Replays).Cast<Tensor>();
            ctx.save_for_backward([.. operands, .. replay]);      // not h: backward replays it
            ctx.save_data("spec", spec);
            ctx.set_materialize_grads(false);
            // Contiguous: A_m and A_r are columns of one matrix, and static weights are broadcast views of parameters.
            return [.. Body(spec, h, operands).Select(t => t.contiguous())];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
        {
            Recompute.Release();
            Recompute.Count();
            var spec = (Spec)ctx.get_data("spec");
            List<Tensor> result;
            using (var scope = NewDisposeScope())
            {
                var saved = ctx.get_saved_variables();
                var replay = saved.Skip(spec.Operands).ToList();
                if (spec.Connection is null)
                {
                    // The link by hand: out = A_r^T H + B y, so dH = A_r dout, dA_r^T = dout H^T, dB = dout y^T and
                    // dy = B^T dout (the ops autograd would run, without making the output again).
                    var h = Replay(replay, spec.FromEmbedding, spec.Rate);
                    var (arT, beta, y) = (saved[0], saved[1], saved[2]);
                    var dout = gradOutputs[0] is { IsInvalid: false } g ? g : zeros_like(h);
                    result = [null!, arT.transpose(1, 2).bmm(dout), dout.bmm(h.transpose(1, 2)), dout.bmm(y.transpose(1, 2)),
                        beta.transpose(1, 2).bmm(dout), .. Enumerable.Repeat<Tensor>(null!, spec.Replays)];
                    spec.Segment.Leave(spec.Index, h.DetachFromDisposeScope());   // the width node of this connection runs next
                }
                else
                {
                    var h = spec.Segment.Take(spec.Index) is { } left ? left : Replay(replay, spec.FromEmbedding, spec.Rate).DetachFromDisposeScope();
                    using var _ = h;
                    h.requires_grad_(true);
                    Tensor[] outputs;
                    using (enable_grad()) outputs = Body(spec, h, []);
                    var grads = outputs.Select((o, i) => gradOutputs[i] is { IsInvalid: false } g ? g : zeros_like(o)).ToList();
                    var inputGrads = autograd.grad(outputs, [h, .. spec.Parameters], grads, allow_unused: true)
                        .Select(g => g is null || g.IsInvalid ? null! : g).ToList();
                    result = [null!, inputGrads[0], .. Enumerable.Repeat<Tensor>(null!, spec.Replays), .. inputGrads.Skip(1)];
                }
                foreach (var g in result) if (g is not null) scope.Detach(g);
            }
            foreach (var g in gradOutputs) g?.Dispose();
            Recompute.HandOver(result);
            return result;
        }
    }
}
