using System.Xml.Linq;

namespace HcService.Contract.Analysis;

/// <summary>Options of <see cref="SvgLineChart"/>.</summary>
/// <param name="Title">Shown above the plot; empty for none.</param>
/// <param name="XLabel">The x axis label.</param>
/// <param name="YLabel">The y axis label.</param>
/// <param name="LogTokens">Log-scaled x axis: loss curves are near power laws in tokens, and the early part is visible.</param>
/// <param name="Width">Pixels, legend included.</param>
/// <param name="Height">Pixels.</param>
public sealed record LineChartOptions(string Title = "", string XLabel = "tokens", string YLabel = "loss",
    bool LogTokens = false, int Width = 720, int Height = 420);

/// <summary>
/// Loss against tokens for several named curves, as a standalone SVG document (plain text, no packages): axes with
/// ticks and labels, one <c>&lt;path class="series"&gt;</c> per curve, and a legend on the right.
/// </summary>
public static class SvgLineChart
{
    /// <summary>Colour-blind-friendly categorical palette (Tableau 10), reused in order.</summary>
    static readonly string[] Palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

    public static string Render(IReadOnlyList<LossCurve> series, LineChartOptions? options = null)
    {
        var o = options ?? new LineChartOptions();
        if (series.Count == 0) throw new ArgumentException("a line chart needs at least one series", nameof(series));
        if (o.Width < 200 || o.Height < 150) throw new ArgumentException($"chart size {o.Width} x {o.Height} px is too small: at least 200 x 150");
        if (o.LogTokens && series.FirstOrDefault(s => s.First.Tokens <= 0) is { } bad)
            throw new ArgumentException($"log-scaled tokens need tokens > 0, but series '{bad.Name}' starts at {bad.First.Tokens}");

        const double left = 64, right = 170, top = 36, bottom = 48;
        var (plotW, plotH) = (o.Width - left - right, o.Height - top - bottom);
        var points = series.SelectMany(s => s.Points).ToArray();
        double xLo = points.Min(p => p.Tokens), xHi = points.Max(p => p.Tokens);
        double yLo = points.Min(p => p.Loss), yHi = points.Max(p => p.Loss);
        if (xHi == xLo) { xLo = o.LogTokens ? xLo / 2 : xLo - 1; xHi = o.LogTokens ? xHi * 2 : xHi + 1; }
        var pad = yHi > yLo ? 0.05 * (yHi - yLo) : Math.Max(0.05 * Math.Abs(yHi), 0.05);
        (yLo, yHi) = (yLo - pad, yHi + pad);
        double Fx(double t) => o.LogTokens ? Math.Log10(t) : t;
        double X(double t) => left + (Fx(t) - Fx(xLo)) / (Fx(xHi) - Fx(xLo)) * plotW;
        double Y(double loss) => top + (yHi - loss) / (yHi - yLo) * plotH;

        var content = new List<object>();
        if (o.Title.Length > 0) content.Add(Svg.Text(o.Width / 2.0, 20, o.Title, "middle", Svg.A("font-size", "14")));
        content.Add(Svg.El("rect", Svg.A("class", "plot-area"), Svg.A("x", left), Svg.A("y", top), Svg.A("width", plotW), Svg.A("height", plotH),
            Svg.A("fill", "none"), Svg.A("stroke", "#333")));
        foreach (var t in o.LogTokens ? Svg.LogTicks(xLo, xHi) : Svg.LinearTicks(xLo, xHi))
        {
            var x = X(t);
            content.Add(Svg.El("line", Svg.A("class", "tick"), Svg.A("x1", x), Svg.A("x2", x), Svg.A("y1", top + plotH), Svg.A("y2", top + plotH + 5), Svg.A("stroke", "#333")));
            content.Add(Svg.Text(x, top + plotH + 18, TokenFormat.Short(t)));
        }
        foreach (var v in Svg.LinearTicks(yLo, yHi))
        {
            var y = Y(v);
            content.Add(Svg.El("line", Svg.A("class", "tick"), Svg.A("x1", left - 5), Svg.A("x2", left), Svg.A("y1", y), Svg.A("y2", y), Svg.A("stroke", "#333")));
            content.Add(Svg.Text(left - 8, y + 4, Svg.Label(v), "end"));
        }
        content.Add(Svg.Text(left + plotW / 2, o.Height - 10, o.XLabel + (o.LogTokens ? " (log scale)" : "")));
        content.Add(Svg.Text(16, top + plotH / 2, o.YLabel, "middle", Svg.A("transform", $"rotate(-90 16 {Svg.N(top + plotH / 2)})")));

        for (var i = 0; i < series.Count; i++)
        {
            var s = series[i];
            var colour = Palette[i % Palette.Length];
            var d = string.Join(" ", s.Points.Select((p, j) => $"{(j == 0 ? "M" : "L")}{Svg.N(X(p.Tokens))},{Svg.N(Y(p.Loss))}"));
            content.Add(Svg.El("path", Svg.A("class", "series"), Svg.A("data-name", s.Name), Svg.A("d", d), Svg.A("fill", "none"),
                Svg.A("stroke", colour), Svg.A("stroke-width", "1.5"), Svg.El("title", s.Name)));
            var ly = top + 8 + 18 * i;
            var lx = left + plotW + 16;
            content.Add(Svg.El("line", Svg.A("class", "legend"), Svg.A("x1", lx), Svg.A("x2", lx + 22), Svg.A("y1", ly), Svg.A("y2", ly), Svg.A("stroke", colour), Svg.A("stroke-width", "2.5")));
            content.Add(Svg.Text(lx + 28, ly + 4, s.Name, "start"));
        }
        return Svg.Render(Svg.Root(o.Width, o.Height, content.ToArray()));
    }
}
