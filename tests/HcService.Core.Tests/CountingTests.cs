using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Core.Counting;
using TorchSharp;
using static HcService.Core.Tests.TestModels;

namespace HcService.Core.Tests;

/// <summary>docs/hc-math.md section 6: the analytic counts equal the instantiated models and the paper's numbers.</summary>
public class CountingTests
{
    public static TheoryData<ConnectionConfig, Architecture, NormKind, bool> Grid()
    {
        var data = new TheoryData<ConnectionConfig, Architecture, NormKind, bool>();
        ConnectionConfig[] connections =
        [
            ConnectionConfig.Residual, new() { Type = ConnectionType.PostNorm },
            ConnectionConfig.StaticHc(1), ConnectionConfig.StaticHc(3), ConnectionConfig.DynamicHc(1), ConnectionConfig.DynamicHc(4),
            ConnectionConfig.Frac(4), ConnectionConfig.Frac(2, dynamic: false), ConnectionConfig.Frac(1),
            ConnectionConfig.Mhc(1), ConnectionConfig.Mhc(4), ConnectionConfig.MhcLite(3), ConnectionConfig.MhcLite(4, MhcInit.Lite),
        ];
        foreach (var conn in connections)
            foreach (var arch in new[] { Architecture.Dense, Architecture.Moe })
                foreach (var norm in new[] { NormKind.LayerNorm, NormKind.RmsNorm })
                    data.Add(conn, arch, norm, norm == NormKind.LayerNorm);   // alternate tied / untied
        return data;
    }

    [Theory]
    [MemberData(nameof(Grid))]
    public void AnalyticCountEqualsInstantiatedModel(ConnectionConfig connection, Architecture arch, NormKind norm, bool tied)
    {
        var config = Tiny(connection, arch, norm) with { TieEmbeddings = tied, Layers = 3 };
        using var scope = torch.NewDisposeScope();
        var model = Build(config);
        var instantiated = model.parameters().Sum(p => p.numel());
        var counted = ModelCounter.Parameters(config);
        Assert.Equal(instantiated, counted.Total);
        var hcInstantiated = model.named_parameters().Where(p => p.name.Contains("_conn.")).Sum(p => p.parameter.numel());
        Assert.Equal(hcInstantiated, counted.HyperConnections);
    }

    [Fact]
    public void PresetsMatchThePaper()
    {
        Assert.Equal(1_176_764_416, ModelCounter.Parameters(Presets.Olmo1B).Total);
        Assert.Equal(6_888_095_744, ModelCounter.Parameters(Presets.Olmo7B).Total);
        var olmoe = ModelCounter.Parameters(Presets.Olmoe1B7B);
        Assert.Equal(6_919_094_272, olmoe.PaperBase);          // the paper's convention: no QK-norm, no final norm
        Assert.Equal(6_919_161_856, olmoe.Total);              // every parameter
        Assert.InRange(olmoe.Active, 1_250_000_000, 1_350_000_000);   // "~1.3B active"
    }

    [Theory]
    [InlineData(ConnectionType.StaticHc, 768)]
    [InlineData(ConnectionType.DynamicHc, 394_048)]
    public void Olmo1BHyperConnectionsX4AddThePapersCount(ConnectionType type, long extra)
    {
        var c = Presets.Olmo1B with { Connection = new() { Type = type, Rate = 4 } };
        var p = ModelCounter.Parameters(c);
        Assert.Equal(extra, p.HyperConnections);
        Assert.Equal(1_176_764_416 + extra, p.Total);
    }

    [Fact]
    public void DynamicHcX4AddsAboutTwoTenthsOfAPercentFlops()
    {
        var f = ModelCounter.Flops(Presets.Olmo1B with { Connection = ConnectionConfig.DynamicHc(4) });
        Assert.InRange(f.HyperConnectionOverhead, 0.0015, 0.0025);
        Assert.Equal(3 * f.Forward, f.Training);
        // Base forward FLOPs: 2 x (matmul params incl. head) + 4 L T d attention.
        Assert.Equal(2L * (16L * 67_108_864 + 50304L * 2048) + 4L * 16 * 2048 * 2048, f.ForwardBase);
    }

    [Fact]
    public void MemoryEstimateGrowsWithStreams()
    {
        var res = ModelCounter.Memory(Presets.Olmo1B, microBatch: 4);
        var dhc4 = ModelCounter.Memory(Presets.Olmo1B with { Connection = ConnectionConfig.DynamicHc(4) }, microBatch: 4);
        Assert.Equal(0, res.ActivationsHyperConnections);
        // +2 n s b d L elements, bf16
        Assert.Equal(2L * 4 * 2048 * 4 * 2048 * 16 * 2, dhc4.ActivationsHyperConnections);
        Assert.Equal(1_176_764_416L * 18, res.WeightsAndOptimizer);
    }
}
