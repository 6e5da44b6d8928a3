using HcService.Contract.Analysis;
using HcService.Contract.Config;
using HcService.Core.Model;
using static TorchSharp.torch;

namespace HcService.Core.Analysis;

/// <summary>
/// Everything issue 6 asks to see about a trained model's connections (docs/hc-math.md section 8), as plain numbers ready
/// for JSON. Residual models are reported as HC with n = 1 (every weight 1), so one chart or table serves both.
/// </summary>
/// <param name="Connection">The connection label, e.g. "dhc-x4", "residual".</param>
/// <param name="Rate">Expansion rate n (1 for residual and Post-Norm).</param>
/// <param name="SampleTokens">Tokens in the sample batch behind <see cref="Dynamic"/>, <see cref="DynamicMatrix"/> and <see cref="Similarity"/>.</param>
/// <param name="Static">Every sublayer's static weights; null for Post-Norm (no linear stream weights).</param>
/// <param name="Dynamic">DHC only: per-sublayer mean and std over the sample tokens of the full dynamic weights.</param>
/// <param name="StaticMatrix">The unfolded connection matrix of the static weights; null for Post-Norm.</param>
/// <param name="DynamicMatrix">DHC only: the unfolded matrix of the dynamic weights averaged over the sample tokens.</param>
/// <param name="Similarity">Adjacent-layer cosine similarity of hidden states (every connection type).</param>
/// <param name="StaticCompositeGain">The composite gain of the static A_r (mHC: at zero projection); null without one.</param>
/// <param name="DynamicCompositeGain">The composite gain of the per-token A_r averaged over the sample tokens (DHC, mHC,
/// mHC-lite); null otherwise.</param>
public sealed record ConnectionReport(string Connection, int Rate, long SampleTokens,
    IReadOnlyList<SublayerConnection>? Static, IReadOnlyList<DynamicWeightStats>? Dynamic,
    ConnectionMatrix? StaticMatrix, ConnectionMatrix? DynamicMatrix, LayerSimilarity Similarity,
    double? StaticCompositeGain = null, double? DynamicCompositeGain = null)
{
    /// <summary>Analyses <paramref name="model"/> with one pass of its trunk over <paramref name="tokens_BT"/>
    /// (token ids [B, T]; no gradients, eval mode, restored afterwards).</summary>
    public static ConnectionReport Of(LanguageModel model, Tensor tokens_BT)
    {
        var c = model.Config.Connection;
        // Frac-Connections mix fractions of one state, not copies: no n x n stream weights to unfold.
        var linear = c.Type is not (ConnectionType.PostNorm or ConnectionType.Frac);
        var dynamicHc = c.Type is ConnectionType.DynamicHc or ConnectionType.Mhc or ConnectionType.MhcLite;
        var dynamic = new List<DynamicWeightStats>();
        var cosines = new double[model.Blocks.Count];
        using (NewDisposeScope())
            TrunkTrace.Run(model, tokens_BT, dynamicHc ? (k, conn, h) => dynamic.Add(DynamicWeightStats.Of(k, conn, h)) : null,
                LayerSimilarity.Collector(cosines));
        var tokens = tokens_BT.shape[0] * tokens_BT.shape[1];
        var statics = linear ? SublayerConnection.Of(model) : null;
        var staticMatrix = statics is null ? null : ConnectionMatrix.Unfold([.. statics.Select(s => s.Static)], "static");
        var dynamicMatrix = dynamicHc ? ConnectionMatrix.Unfold([.. dynamic.Select(d => d.Mean)], $"dynamic, mean over {tokens} tokens") : null;
        return new(c.Label, c.Rate, tokens, statics, dynamicHc ? dynamic : null, staticMatrix, dynamicMatrix, new(cosines, tokens),
            statics is null ? null : CompositeGain.Of(statics.Select(s => s.Static.Ar)),
            dynamicHc ? CompositeGain.Of(dynamic.Select(d => d.Mean.Ar)) : null);
    }
}
