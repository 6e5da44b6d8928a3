using HcService.Contract.Analysis;
using ScottPlot;

namespace HcService.Plots;

/// <summary>Options of <see cref="LineChart"/>.</summary>
/// <param name="Title">Shown above the plot; empty for none.</param>
/// <param name="XLabel">The x axis label.</param>
/// <param name="YLabel">The y axis label, with its unit (<see cref="LineChart.AxisLabel"/> writes one for a metric name).</param>
/// <param name="LogTokens">Log-scaled x axis: loss curves are near power laws in tokens, and the early part is visible.</param>
/// <param name="Width">Pixels, legend included.</param>
/// <param name="Height">Pixels, legend included.</param>
public sealed record LineChartOptions(string Title = "", string XLabel = "tokens", string YLabel = "loss (nats/token)",
    bool LogTokens = false, int Width = 800, int Height = 480);

/// <summary>
/// Loss against tokens for several named curves as an SVG document, drawn by ScottPlot: a grid, token-count tick labels
/// (200k, 1.2M), axis labels with units, and the legend below the plot so that long run names fit whole.
/// </summary>
public static class LineChart
{
    public static string Svg(IReadOnlyList<LossCurve> series, LineChartOptions? options = null)
    {
        var o = options ?? new LineChartOptions();
        if (series.Count == 0) throw new ArgumentException("a line chart needs at least one series", nameof(series));
        if (o.Width < 200 || o.Height < 150) throw new ArgumentException($"chart size {o.Width} x {o.Height} px is too small: at least 200 x 150");
        if (o.LogTokens && series.FirstOrDefault(s => s.First.Tokens <= 0) is { } bad)
            throw new ArgumentException($"log-scaled tokens need tokens > 0, but series '{bad.Name}' starts at {bad.First.Tokens}");

        var plot = PlotStyle.New();
        foreach (var s in series)
        {
            var xs = s.Points.Select(p => o.LogTokens ? Math.Log10(p.Tokens) : p.Tokens).ToArray();
            var line = plot.Add.ScatterLine(xs, s.Points.Select(p => p.Loss).ToArray());
            line.LegendText = s.Name;
            line.LineWidth = 1.5f;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = x => TokenFormat.Short(o.LogTokens ? Math.Pow(10, x) : x),
            IntegerTicksOnly = o.LogTokens,
            MinorTickGenerator = o.LogTokens ? new ScottPlot.TickGenerators.LogMinorTickGenerator() : new ScottPlot.TickGenerators.EvenlySpacedMinorTickGenerator(5),
        };
        if (o.Title.Length > 0) plot.Title(o.Title);
        plot.XLabel(o.XLabel + (o.LogTokens ? " (log scale)" : ""));
        plot.YLabel(o.YLabel);
        plot.ShowLegend(Edge.Bottom);
        return PlotStyle.Svg(plot, o.Width, o.Height);
    }

    /// <summary>An axis label with the metric's unit: losses are in nats per token, accuracies a fraction, throughput in
    /// tokens per second; other metrics keep their name.</summary>
    public static string AxisLabel(string metric) => metric switch
    {
        "train/loss" => "training loss (nats/token)",
        _ when metric.StartsWith("val/", StringComparison.Ordinal) && metric.EndsWith("/loss", StringComparison.Ordinal) =>
            $"validation loss, {metric[4..^5]} (nats/token)",
        _ when metric.EndsWith("tokens_per_second", StringComparison.Ordinal) => $"{metric} (tokens/s)",
        _ when metric.EndsWith("/lr", StringComparison.Ordinal) => $"{metric} (learning rate)",
        _ => metric,
    };
}
