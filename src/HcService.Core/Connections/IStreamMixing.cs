using HcService.Core.Model;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

/// <summary>A connection over n copies of the hidden state mixed by an n x n A_r (HC, mHC, mHC-lite): what the connection
/// analysis and the training statistics read.</summary>
public interface IStreamMixing : IConnection
{
    /// <summary>The expansion rate n.</summary>
    int Rate { get; }

    /// <summary>The weights without their input-dependent part (B [N], A_m [N], A_r [N, N]): HC's static matrices, mHC's
    /// weights at zero projection (its biases alone).</summary>
    (Tensor B, Tensor Am, Tensor Ar) StaticWeights { get; }

    /// <summary>Every token's A_m^T [X, 1, N], A_r^T [X, N, N] and B [X, N, 1] for the trunk state [X, N, D]: the function
    /// the forward pass uses.</summary>
    (Tensor AmT, Tensor ArT, Tensor Beta) Weights(Tensor h_XND);

    /// <summary>Whether the forward recomputes <see cref="Weights"/> in backward (training.recompute = hc, and weights
    /// that depend on the streams).</summary>
    bool RecomputesWeights { get; }

    /// <summary>Which implementation mixes the streams (Auto: the fused CPU kernels where they apply).</summary>
    HcService.Core.Native.ConnectionKernels Kernels { get; set; }
}

/// <summary>The forward pass every stream-mixing connection shares, given its per-token weights.</summary>
public static class StreamMixing
{
    /// <summary>x = A_m^T H (eq. 3) and H' = A_r^T H (eq. 4) as batched matmuls over the stream axis, one per token;
    /// y = T(norm(x)); H_out = B^T y + H' (eq. 5) as one fused baddbmm, [X, N, D] + [X, N, 1] @ [X, 1, D].</summary>
    public static Tensor Forward(IStreamMixing connection, Tensor h_BTND, Norm sublayerNorm, Func<Tensor, Tensor> sublayer)
    {
        using var scope = NewDisposeScope();
        var (B, T, N, D) = (h_BTND.shape[0], h_BTND.shape[1], h_BTND.shape[2], h_BTND.shape[3]);
        var X = B * T;
        var h_XND = h_BTND.reshape(X, N, D);                 // a view except after the first Expand
        var recomputed = connection.RecomputesWeights && Recompute.Applies(((TorchSharp.torch.nn.Module)connection).training);
        var (amT_X1N, arT_XNN, beta_XN1) = recomputed ? Recomputed(connection, h_XND) : connection.Weights(h_XND);
        // The mixing kernels (CPU, fp32) for weights made here; the tensor path under recompute = hc, which keeps the
        // streams for the bmm's to share with its recomputing node.
        if (!recomputed && connection.Kernels == HcService.Core.Native.ConnectionKernels.Auto && HcService.Core.Native.NativeConnections.Supports(h_BTND))
            return HcService.Core.Native.NativeConnections.Mixing(h_BTND, amT_X1N, arT_XNN, beta_XN1, sublayerNorm, sublayer).MoveToOuterDisposeScope();
        var x_X1D = amT_X1N.bmm(h_XND);
        var hRes_XND = arT_XNN.bmm(h_XND);
        var y_BTD = sublayer(sublayerNorm.forward(x_X1D.view(B, T, D)));
        var out_XND = TorchOps.BaddBmm(hRes_XND, beta_XN1, y_BTD.reshape(X, 1, D));
        return out_XND.view(B, T, N, D).MoveToOuterDisposeScope();
    }

    static (Tensor AmT, Tensor ArT, Tensor Beta) Recomputed(IStreamMixing connection, Tensor h_XND)
    {
        var w = Recompute.Weights(h =>
        {
            var (amT, arT, beta) = connection.Weights(h);
            return [amT, arT, beta];
        }, h_XND, [.. ((TorchSharp.torch.nn.Module)connection).parameters()]);
        return (w[0], w[1], w[2]);
    }
}
