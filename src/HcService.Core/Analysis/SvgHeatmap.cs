using HcService.Contract.Analysis;
using System.Globalization;

namespace HcService.Core.Analysis;

/// <summary>Options of <see cref="SvgHeatmap"/>.</summary>
/// <param name="Title">Shown above the map; empty for none.</param>
/// <param name="XLabel">Label of the column axis.</param>
/// <param name="YLabel">Label of the row axis.</param>
/// <param name="Limit">Values at +-Limit get the full colours (beyond it they are clamped); null: the largest |value|.</param>
/// <param name="CellSize">Pixels per cell side.</param>
public sealed record HeatmapOptions(string Title = "", string XLabel = "writing sublayer j", string YLabel = "reading sublayer k",
    double? Limit = null, int CellSize = 22);

/// <summary>
/// A matrix as an SVG heatmap with a diverging colour scale centred at 0 (blue negative, white 0, red positive:
/// ColorBrewer RdBu's ends), one <c>&lt;rect class="cell"&gt;</c> per entry with its value in a tooltip, and a colour
/// bar. Diverging, because the connection matrix's story is in its signs: long-range pairs that cancel (docs/hc-math.md section 8.2).
/// Row 0 is at the top, as the matrix is written.
/// </summary>
public static class SvgHeatmap
{
    static readonly (int R, int G, int B) Negative = (0x21, 0x66, 0xac), Zero = (0xff, 0xff, 0xff), Positive = (0xb2, 0x18, 0x2b);

    /// <summary>The unfolded connection matrix, with its labels and the axis names "reading sublayer k" / "writing sublayer j".</summary>
    public static string Render(ConnectionMatrix matrix, string title = "") =>
        Render(matrix.Values, matrix.ReadingLabels, matrix.WritingLabels, new HeatmapOptions(Title: title.Length > 0 ? title : $"connection matrix ({matrix.Source})"));

    public static string Render(double[][] values, IReadOnlyList<string> rowLabels, IReadOnlyList<string> columnLabels, HeatmapOptions? options = null)
    {
        var o = options ?? new HeatmapOptions();
        var rows = values.Length;
        var cols = rows == 0 ? 0 : values[0].Length;
        if (rows == 0 || cols == 0) throw new ArgumentException("a heatmap needs at least one cell", nameof(values));
        if (values.Any(r => r.Length != cols)) throw new ArgumentException($"every row needs {cols} values, got row lengths [{string.Join(", ", values.Select(r => r.Length))}]", nameof(values));
        if (rowLabels.Count != rows || columnLabels.Count != cols)
            throw new ArgumentException($"{rows} x {cols} values need {rows} row and {cols} column labels, got {rowLabels.Count} and {columnLabels.Count}");
        if (values.SelectMany(r => r).FirstOrDefault(v => !double.IsFinite(v), 0) is var nf && !double.IsFinite(nf))
            throw new ArgumentException($"heatmap values must be finite, found {nf}", nameof(values));
        var limit = o.Limit ?? values.SelectMany(r => r).Max(Math.Abs);
        if (!(limit > 0)) limit = 1;   // an all-zero matrix: any positive limit draws it white

        double cell = o.CellSize, left = 80, top = o.Title.Length > 0 ? 40 : 16, barGap = 24, barW = 14;
        var (mapW, mapH) = (cols * cell, rows * cell);
        var width = left + mapW + barGap + barW + 60;
        var height = top + mapH + 56;
        var content = new List<object>();
        if (o.Title.Length > 0) content.Add(Svg.Text(width / 2, 22, o.Title, "middle", Svg.A("font-size", "14")));
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < cols; c++)
                content.Add(Svg.El("rect", Svg.A("class", "cell"), Svg.A("x", left + c * cell), Svg.A("y", top + r * cell),
                    Svg.A("width", cell), Svg.A("height", cell), Svg.A("fill", Colour(values[r][c], limit)),
                    Svg.El("title", $"{rowLabels[r]}, {columnLabels[c]}: {values[r][c].ToString("G6", CultureInfo.InvariantCulture)}")));
        for (var r = 0; r < rows; r++) content.Add(Svg.Text(left - 6, top + (r + 0.5) * cell + 4, rowLabels[r], "end"));
        for (var c = 0; c < cols; c++) content.Add(Svg.Text(left + (c + 0.5) * cell, top + mapH + 14, columnLabels[c]));
        content.Add(Svg.Text(left + mapW / 2, top + mapH + 36, o.XLabel));
        content.Add(Svg.Text(18, top + mapH / 2, o.YLabel, "middle", Svg.A("transform", $"rotate(-90 18 {Svg.N(top + mapH / 2)})")));

        // Colour bar: +limit at the top, -limit at the bottom.
        var barX = left + mapW + barGap;
        content.Add(Svg.El("defs", Svg.El("linearGradient", Svg.A("id", "diverging"), Svg.A("x1", "0"), Svg.A("y1", "0"), Svg.A("x2", "0"), Svg.A("y2", "1"),
            Svg.El("stop", Svg.A("offset", "0"), Svg.A("stop-color", Colour(limit, limit))),
            Svg.El("stop", Svg.A("offset", "0.5"), Svg.A("stop-color", Colour(0, limit))),
            Svg.El("stop", Svg.A("offset", "1"), Svg.A("stop-color", Colour(-limit, limit))))));
        content.Add(Svg.El("rect", Svg.A("class", "colorbar"), Svg.A("x", barX), Svg.A("y", top), Svg.A("width", barW), Svg.A("height", mapH),
            Svg.A("fill", "url(#diverging)"), Svg.A("stroke", "#333")));
        foreach (var (v, y) in new[] { (limit, top), (0.0, top + mapH / 2), (-limit, top + mapH) })
            content.Add(Svg.Text(barX + barW + 4, y + 4, Svg.Label(v), "start"));
        return Svg.Render(Svg.Root(width, height, content.ToArray()));
    }

    /// <summary>The diverging colour of <paramref name="value"/>: linear in RGB from white at 0 to red at +limit and
    /// blue at -limit, clamped beyond; "#rrggbb".</summary>
    public static string Colour(double value, double limit)
    {
        if (!(limit > 0) || !double.IsFinite(limit)) throw new ArgumentOutOfRangeException(nameof(limit), limit, "the colour limit must be finite and > 0");
        var t = Math.Clamp(value / limit, -1, 1);
        var end = t >= 0 ? Positive : Negative;
        var a = Math.Abs(t);
        int Mix(int zero, int full) => (int)Math.Round(zero + a * (full - zero), MidpointRounding.AwayFromZero);
        return $"#{Mix(Zero.R, end.R):x2}{Mix(Zero.G, end.G):x2}{Mix(Zero.B, end.B):x2}";
    }
}
