using HcService.Contract.Analysis;
using HcService.Core.Connections;
using static TorchSharp.torch;

namespace HcService.Core.Analysis;

// Axes: X tokens (B * T), N streams, D width.

/// <summary>
/// Statistics over the tokens of a sample batch of one connection's full per-token weights B(H), A_m(H), A_r(H)
/// (docs/hc-math.md section 3.3: static part plus s * tanh(norm(H) W)). The mean is what the paper unfolds ("dynamic weights
/// averaged over tokens"); the std says how much the weights really move from token to token. How far the mean has
/// moved from the static part is <c>Mean - Static</c> of <see cref="SublayerConnection"/>. Std is the population std
/// (divided by the token count). For static HC and residual every std is 0 and the mean is the static weight.
/// </summary>
/// <param name="Sublayer">k = 2 * block + (0 attention, 1 MLP).</param>
/// <param name="Tokens">Tokens averaged over (B * T of the sample batch).</param>
/// <param name="Mean">Entry-wise mean over tokens, same layout as <see cref="ConnectionWeights"/>.</param>
/// <param name="Std">Entry-wise std over tokens.</param>
public sealed record DynamicWeightStats(int Sublayer, long Tokens, ConnectionWeights Mean, ConnectionWeights Std)
{
    /// <summary>
    /// The statistics of connection <paramref name="k"/> on the trunk state entering it, [B, T, N, D] for HC. The
    /// weights come from the module's own <see cref="HyperConnection.Weights"/>, the function its forward pass uses,
    /// so what is averaged is exactly what the model applied.
    /// </summary>
    internal static DynamicWeightStats Of(int k, IConnection connection, Tensor h)
    {
        if (connection is not IStreamMixing hc)
        {
            var zero = new ConnectionWeights([0.0], [0.0], [[0.0]]);
            return new(k, h.shape[0] * h.shape[1], ConnectionWeights.Residual, zero);
        }
        using var scope = NewDisposeScope();
        var (B, T, N, D) = (h.shape[0], h.shape[1], h.shape[2], h.shape[3]);
        var (amT_X1N, arT_XNN, beta_XN1) = hc.Weights(h.reshape(B * T, N, D));
        var am_XN = amT_X1N.squeeze(1).to_type(ScalarType.Float64);
        var ar_XNN = arT_XNN.transpose(1, 2).to_type(ScalarType.Float64);   // Weights gives A_r^T; back to A_r[i, j]
        var b_XN = beta_XN1.squeeze(2).to_type(ScalarType.Float64);
        ConnectionWeights Reduce(Func<Tensor, Tensor> f) => ConnectionWeights.FromTensors(f(b_XN), f(am_XN), f(ar_XNN));
        return new(k, B * T, Reduce(t => t.mean([0L])), Reduce(t => t.std(0, unbiased: false)));
    }
}
