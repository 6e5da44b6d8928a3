using HcService.Contract.Analysis;
using HcService.Core.Model;
using static TorchSharp.torch;

namespace HcService.Core.Analysis;

// Axes: B batch, T time, D width.

/// <summary>
/// Cosine similarity of adjacent layers' hidden states on a sample batch: the paper's representation-collapse argument
/// (Pre-Norm residual's hidden states grow alike from layer to layer, so later layers add less; HC keeps them apart).
/// h_0 is the embedding output and h_l the hidden state after block l - 1. For HC, h is the SUM over streams, which
/// is the state the output head would read if the network ended there (docs/hc-math.md section 3.1); the stream mean would give the
/// same cosine, since cosine ignores scale. So residual and HC models are compared on the same footing.
/// </summary>
/// <param name="AdjacentCosine">[L]: entry l is the mean over tokens of cos(h_l, h_{l+1}), l = 0 .. L-1.</param>
/// <param name="Tokens">Tokens averaged over (B * T).</param>
public sealed record LayerSimilarity(double[] AdjacentCosine, long Tokens)
{
    /// <summary>The adjacent-layer cosines of <paramref name="model"/> on <paramref name="tokens_BT"/> (no gradients, eval mode).</summary>
    public static LayerSimilarity Of(LanguageModel model, Tensor tokens_BT)
    {
        var cosines = new double[model.Blocks.Count];
        using (NewDisposeScope()) TrunkTrace.Run(model, tokens_BT, null, Collector(cosines));
        return new(cosines, tokens_BT.shape[0] * tokens_BT.shape[1]);
    }

    /// <summary>A <see cref="TrunkTrace"/> layer callback that writes cos(h_l, h_{l+1}) into <paramref name="cosines"/>[l].</summary>
    internal static Action<int, Tensor> Collector(double[] cosines)
    {
        Tensor? previous = null;
        return (l, h_BTD) =>
        {
            if (l > 0) cosines[l - 1] = MeanCosine(previous!, h_BTD);
            previous = h_BTD;
        };
    }

    /// <summary>Mean over tokens of the cosine between two [B, T, D] hidden states, in float64. A zero vector has cosine 0.</summary>
    internal static double MeanCosine(Tensor a_BTD, Tensor b_BTD)
    {
        using var scope = NewDisposeScope();
        var a = a_BTD.to_type(ScalarType.Float64);
        var b = b_BTD.to_type(ScalarType.Float64);
        var norms = a.norm(-1) * b.norm(-1);
        var cos_BT = (a * b).sum(-1) / norms.clamp_min(1e-300);
        return cos_BT.mean().item<double>();
    }
}
