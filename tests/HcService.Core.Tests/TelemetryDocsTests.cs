using HcService.Contract.Metrics;

namespace HcService.Core.Tests;

/// <summary>docs/telemetry.md documents every metric the registry declares, under the names the code uses.</summary>
public class TelemetryDocsTests
{
    static readonly string Docs = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "telemetry.md"));

    [Fact]
    public void EveryDeclaredMetricIsDocumentedUnderItsStoredAndExportedName()
    {
        var missing = new List<string>();
        foreach (var d in MetricRegistry.All)
        {
            if (d.Name != "(not stored)" && !Docs.Contains($"`{d.Name}`", StringComparison.Ordinal)) missing.Add($"stored name {d.Name}");
            if (d.Instrument is { } instrument && !Docs.Contains($"`{instrument.Replace('.', '_')}", StringComparison.Ordinal))
                missing.Add($"exported name {instrument.Replace('.', '_')} ({d.Name})");
        }
        Assert.True(missing.Count == 0, "docs/telemetry.md lacks: " + string.Join("; ", missing));
    }

    [Fact]
    public void StoredNamesAreDistinctAndTheHelpersFollowTheTemplates()
    {
        var stored = MetricRegistry.All.Where(d => d.Name != "(not stored)").Select(d => d.Name).ToList();
        Assert.Equal(stored.Count, stored.Distinct().Count());
        Assert.Equal("val/valid-austen-bytes/loss", MetricRegistry.ValidationLossOf("valid-austen-bytes"));
        Assert.True(MetricRegistry.IsValidationLoss("val/valid-austen-bytes/loss", out var set));
        Assert.Equal("valid-austen-bytes", set);
        Assert.False(MetricRegistry.IsValidationLoss("val/valid-austen-bytes/perplexity", out _));
        Assert.False(MetricRegistry.IsValidationLoss("val//loss", out _));
        Assert.Equal("moe/expert_tokens/l1/e3", MetricRegistry.ExpertTokensOf(1, 3));
        Assert.Equal("hc/am_own/k3", MetricRegistry.ConnectionStatisticOf("am_own", 3));
    }
}
