using System.Globalization;
using ScottPlot;

namespace HcService.Plots;

/// <summary>Options of <see cref="Heatmap"/>.</summary>
/// <param name="Title">Shown above the map; empty for none.</param>
/// <param name="XLabel">Label of the column axis.</param>
/// <param name="YLabel">Label of the row axis.</param>
/// <param name="Limit">Values at +-Limit get the full colours, beyond it they are clamped; null: <see cref="Heatmap.ColourLimit"/>.</param>
/// <param name="LowerTriangular">Cells right of the diagonal (column &gt; row) cannot hold a value and are left blank.</param>
/// <param name="ScaleLabel">Label of the colour bar.</param>
public sealed record HeatmapOptions(string Title = "", string XLabel = "writing sublayer j", string YLabel = "reading sublayer k",
    double? Limit = null, bool LowerTriangular = false, string ScaleLabel = "value");

/// <summary>
/// A matrix as an SVG heatmap drawn by ScottPlot: a diverging colour scale centred at 0 (cmocean "balance": blue
/// negative, white 0, red positive), every cell's value printed in it (up to 24 x 24 cells), row 0 at the top as the
/// matrix is written, and a colour bar. Diverging, because the connection matrix's story is in its signs: long-range
/// pairs that cancel (docs/hc-math.md section 8.2).
/// </summary>
public static class Heatmap
{
    /// <summary>The matrices whose cells get their value printed: at most this many rows and columns.</summary>
    public const int MaxLabelledSide = 24;

    /// <summary>The row label of the connection matrix's output row, which <see cref="ColourLimit"/> leaves out.</summary>
    public const string OutputRow = "out";

    /// <summary>The unfolded connection matrix (docs/hc-math.md section 8.2): rows are readers ("0" .. "S-1", "out"),
    /// columns writers ("emb", "0" .. "S-1"); cells right of the diagonal are impossible and blank.</summary>
    public static string ConnectionMatrix(double[][] values, IReadOnlyList<string> readingLabels, IReadOnlyList<string> writingLabels, string title) =>
        Svg(values, readingLabels, writingLabels, new HeatmapOptions(Title: title, LowerTriangular: true, ScaleLabel: "c(k, j)"));

    public static string Svg(double[][] values, IReadOnlyList<string> rowLabels, IReadOnlyList<string> columnLabels, HeatmapOptions? options = null)
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
        var limit = o.Limit ?? ColourLimit(values, rowLabels);
        if (!(limit > 0) || !double.IsFinite(limit)) throw new ArgumentOutOfRangeException(nameof(options), limit, "the colour limit must be finite and > 0");

        bool Blank(int r, int c) => o.LowerTriangular && c > r;
        var intensities = new double[rows, cols];
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < cols; c++)
                intensities[r, c] = Blank(r, c) ? double.NaN : values[r][c];

        var plot = PlotStyle.New();
        var map = plot.Add.Heatmap(intensities);
        map.Colormap = new ScottPlot.Colormaps.Balance();
        map.ManualRange = new ScottPlot.Range(-limit, limit);
        map.NaNCellColor = Colors.Transparent;
        var clipped = values.SelectMany(r => r).Count(v => Math.Abs(v) > limit);
        plot.Add.ColorBar(map).Label = o.ScaleLabel;

        // ScottPlot draws row r of the intensities at y = rows - 1 - r and column c at x = c.
        if (rows <= MaxLabelledSide && cols <= MaxLabelledSide)
            for (var r = 0; r < rows; r++)
                for (var c = 0; c < cols; c++)
                {
                    if (Blank(r, c)) continue;
                    var v = values[r][c];
                    var text = plot.Add.Text(Number(v), c, rows - 1 - r);
                    text.LabelAlignment = Alignment.MiddleCenter;
                    text.LabelFontSize = cols > 14 ? 9 : 11;
                    text.LabelFontColor = Math.Abs(v) > 0.6 * limit ? Colors.White : Colors.Black;
                }
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, rows).Select(r => (double)(rows - 1 - r)).ToArray(), rowLabels.ToArray());
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, cols).Select(c => (double)c).ToArray(), columnLabels.ToArray());
        plot.Grid.IsVisible = false;
        if (o.Title.Length > 0) plot.Title(o.Title);
        plot.XLabel(clipped == 0 ? o.XLabel : $"{o.XLabel}\ncolour clipped at ±{Number(limit)}: {clipped} cell{(clipped == 1 ? "" : "s")} beyond");
        plot.YLabel(o.YLabel);
        plot.Axes.Margins(0, 0);
        var side = Math.Clamp(40 * Math.Max(rows, cols), 240, 900);
        return PlotStyle.Svg(plot, Math.Max(side + 200, 9 * o.Title.Length + 40), side + 130);
    }

    /// <summary>
    /// The colour limit that keeps small values visible: the 95th percentile of the non-zero |values| outside the output
    /// row. The output row of HC sums n streams (about n at init; the final norm removes that scale), and one such row
    /// would otherwise wash every other cell out to white; its cells are clamped and their values printed. 1 when
    /// nothing is non-zero.
    /// </summary>
    public static double ColourLimit(double[][] values, IReadOnlyList<string> rowLabels)
    {
        var magnitudes = values.Where((_, r) => rowLabels[r] != OutputRow).SelectMany(r => r).Select(Math.Abs).Where(v => v > 0).Order().ToArray();
        if (magnitudes.Length == 0) magnitudes = values.SelectMany(r => r).Select(Math.Abs).Where(v => v > 0).Order().ToArray();
        if (magnitudes.Length == 0) return 1;
        return magnitudes[(int)Math.Ceiling(0.95 * magnitudes.Length) - 1];
    }

    /// <summary>A cell's value in at most three significant digits: 7.9, 1, 0.25, -0.031, 0.</summary>
    public static string Number(double v) =>
        v == 0 ? "0" : v.ToString(Math.Abs(v) >= 100 ? "0" : Math.Abs(v) >= 10 ? "0.#" : Math.Abs(v) >= 1 ? "0.##" : Math.Abs(v) >= 0.01 ? "0.###" : "0.##E0", CultureInfo.InvariantCulture);
}
