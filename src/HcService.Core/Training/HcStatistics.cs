using HcService.Core.Connections;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Training;

/// <summary>
/// Learned-connection statistics for telemetry, per sublayer k: the Frobenius distance of the static A_r from the
/// identity, the mean |B|, the read weight A_m on the sublayer's own stream (k mod n), and for DHC the scales s_a, s_b.
/// </summary>
public static class HcStatistics
{
    public static Dictionary<string, double> Of(LanguageModel model)
    {
        var stats = new Dictionary<string, double>();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var k = 0;
        foreach (var conn in model.Connections)
        {
            if (conn is HyperConnection hc)
            {
                var (b, am, ar) = hc.StaticWeights;
                stats[$"hc.ar_identity_dist.k{k}"] = (ar - eye(hc.Rate, dtype: ar.dtype, device: ar.device)).norm().item<float>();
                stats[$"hc.beta_mean_abs.k{k}"] = b.abs().mean().item<float>();
                stats[$"hc.am_own.k{k}"] = am[k % hc.Rate].item<float>();
                if (hc.Scales is { } s)
                {
                    stats[$"hc.alpha_scale.k{k}"] = s.Alpha;
                    stats[$"hc.beta_scale.k{k}"] = s.Beta;
                }
            }
            k++;
        }
        return stats;
    }
}
