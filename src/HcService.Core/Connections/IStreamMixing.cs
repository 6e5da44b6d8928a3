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
}
