using HcService.Contract.Analysis;
using HcService.Contract.Metrics;
using HcService.Core.Connections;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Training;

/// <summary>
/// Learned-connection statistics for telemetry, per sublayer k: the Frobenius distance of the static A_r from the
/// identity, the mean |B|, the read weight A_m on the sublayer's own stream (k mod n), and for DHC the scales s_a, s_b;
/// named as they are stored (<see cref="MetricRegistry.ConnectionStatistic"/>: hc/{stat}/k{sublayer}).
/// </summary>
public static class HcStatistics
{
    public static Dictionary<string, double> Of(LanguageModel model)
    {
        var stats = new Dictionary<string, double>();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var k = 0;
        var mixings = new List<double[][]>();
        foreach (var conn in model.Connections)
        {
            if (conn is IStreamMixing hc)
            {
                var (b, am, ar) = hc.StaticWeights;
                mixings.Add(Analysis.ConnectionWeights.FromTensors(b, am, ar).Ar);
                stats[MetricRegistry.ConnectionStatisticOf("ar_identity_dist", k)] = (ar - eye(hc.Rate, dtype: ar.dtype, device: ar.device)).norm().item<float>();
                stats[MetricRegistry.ConnectionStatisticOf("beta_mean_abs", k)] = b.abs().mean().item<float>();
                stats[MetricRegistry.ConnectionStatisticOf("am_own", k)] = am[k % hc.Rate].item<float>();
                if ((hc as HyperConnection)?.Scales is { } s)
                {
                    stats[MetricRegistry.ConnectionStatisticOf("alpha_scale", k)] = s.Alpha;
                    stats[MetricRegistry.ConnectionStatisticOf("beta_scale", k)] = s.Beta;
                }
            }
            k++;
        }
        if (mixings.Count > 0) stats[MetricRegistry.CompositeGain.Name] = CompositeGain.Of(mixings);
        return stats;
    }
}
