using System.Globalization;
using System.Xml.Linq;
using HcService.Contract.Analysis;
using HcService.Core.Analysis;
using HcService.Plots;

namespace HcService.Core.Tests;

/// <summary>The server-side pictures (ScottPlot SVG): whole legends, units on axes, token tick labels, one line per
/// curve, a colour limit that keeps small values visible and every cell's value printed.</summary>
public class PlotTests
{
    static List<string> Texts(string svg) => XDocument.Parse(svg).Descendants().Where(e => e.Name.LocalName == "text").Select(t => t.Value.Trim()).ToList();

    /// <summary>The number of points of every path ("M x y L x y ...").</summary>
    static List<int> PathLengths(string svg) => XDocument.Parse(svg).Descendants().Where(e => e.Name.LocalName == "path")
        .Select(p => ((string?)p.Attribute("d") ?? "").Count(ch => ch is 'M' or 'L')).ToList();

    static LossCurve Curve(string name, int points, double start) =>
        LossCurve.From(name, Enumerable.Range(0, points).Select(i => (start * Math.Pow(10, i * 2.0 / (points - 1)), 4.0 - 0.1 * i)));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LineChartDrawsEveryCurveWithItsWholeNameAndUnits(bool log)
    {
        const string longName = "small-dhc4-scaled-s3 (run 12, dynamic-hc x4, scaleOutputInit) — the longest name in the group";
        var series = new[] { Curve("baseline <&>", 5, 1e6), Curve(longName, 7, 1e6), Curve("SHC x2", 9, 2e6) };
        var svg = LineChart.Svg(series, new LineChartOptions(Title: "val/austen/loss vs tokens", YLabel: LineChart.AxisLabel("val/austen/loss"), LogTokens: log));
        var texts = Texts(svg);
        Assert.Contains("baseline <&>", texts);
        Assert.Contains(longName, texts);   // whole (the legend sits below the plot, where a long name has the full width)
        Assert.Contains("validation loss, austen (nats/token)", texts);
        Assert.Contains(log ? "tokens (log scale)" : "tokens", texts);
        Assert.Contains(log ? "10M" : "100M", texts);   // a tick label in token form
        var lengths = PathLengths(svg);
        foreach (var n in new[] { 5, 7, 9 }) Assert.Contains(n, lengths);   // one polyline per curve, one vertex per point
    }

    [Fact]
    public void LineChartRejectsZeroTokensOnALogAxisAndAnEmptyList()
    {
        var e = Assert.Throws<ArgumentException>(() => LineChart.Svg([LossCurve.From("run a", [(0, 4), (10, 3)])], new(LogTokens: true)));
        Assert.Contains("'run a' starts at 0", e.Message);
        Assert.Throws<ArgumentException>(() => LineChart.Svg([]));
    }

    [Theory]
    [InlineData("train/loss", "training loss (nats/token)")]
    [InlineData("val/valid-austen-bytes/loss", "validation loss, valid-austen-bytes (nats/token)")]
    [InlineData("train/tokens_per_second", "train/tokens_per_second (tokens/s)")]
    [InlineData("train/grad_norm", "train/grad_norm")]
    public void AxisLabelsCarryUnits(string metric, string label) => Assert.Equal(label, LineChart.AxisLabel(metric));

    [Fact]
    public void ColourLimitIgnoresTheOutputRowAndOneOutlier()
    {
        // 20 small values in the sublayer rows (0.01 .. 0.20), one outlier 5 among them, and an output row of +-7.9:
        // the 95th percentile of the 21 sublayer magnitudes is 0.20, so the small values keep their colours.
        var sub = Enumerable.Range(1, 20).Select(i => i * 0.01).Append(5.0).ToArray();
        double[][] values = [sub[..7], sub[7..14], sub[14..21], [7.9, -7.9, 0, 0, 0, 0, 0]];
        Assert.Equal(0.20, Heatmap.ColourLimit(values, ["0", "1", "2", "out"]), 12);
        // Without an output row label, the +-7.9 count too: 23 magnitudes, the 95th percentile is the 22nd = 7.9.
        Assert.Equal(7.9, Heatmap.ColourLimit(values, ["0", "1", "2", "3"]), 12);
        Assert.Equal(1, Heatmap.ColourLimit([[0, 0], [0, 0]], ["0", "out"]));
    }

    [Fact]
    public void HeatmapPrintsEveryPossibleCellAndSaysWhatIsClipped()
    {
        double[][] values = [[1, 0, 0], [-0.031, 0.25, 0], [7.9, -7.9, 0.5]];
        var svg = Heatmap.Svg(values, ["0", "1", "out"], ["emb", "0", "1"], new HeatmapOptions(Title: "connections", LowerTriangular: true, ScaleLabel: "c(k, j)"));
        var texts = Texts(svg);
        foreach (var label in new[] { "connections", "reading sublayer k", "writing sublayer j", "out", "emb" }) Assert.Contains(label, texts);
        // Six possible cells (the three right of the diagonal are blank): each value printed once.
        foreach (var v in new[] { "1", "-0.031", "0.25", "7.9", "-7.9", "0.5" }) Assert.Contains(v, texts);
        // The three zeros right of the diagonal are not printed: drawn as a full matrix, exactly three more "0" appear.
        var full = Texts(Heatmap.Svg(values, ["0", "1", "out"], ["emb", "0", "1"], new HeatmapOptions(Title: "connections", ScaleLabel: "c(k, j)")));
        Assert.Equal(texts.Count(t => t == "0") + 3, full.Count(t => t == "0"));
        // Limit: the sublayer rows' magnitudes (1, 0.031, 0.25): 95th percentile = 1, so both +-7.9 are clipped.
        Assert.Contains("colour clipped at ±1: 2 cells beyond", texts);
    }

    [Fact]
    public void HeatmapRejectsRaggedOrNonFiniteInput()
    {
        Assert.Contains("every row needs 2 values", Assert.Throws<ArgumentException>(() => Heatmap.Svg([[1, 2], [3]], ["a", "b"], ["x", "y"])).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => Heatmap.Svg([[double.NaN]], ["a"], ["x"])).Message);
        Assert.Contains("labels", Assert.Throws<ArgumentException>(() => Heatmap.Svg([[1]], ["a", "b"], ["x"])).Message);
    }

    [Fact]
    public void ConnectionMatrixHeatmapOfAnUnfoldedMatrix()
    {
        var m = ConnectionMatrix.Unfold([ConnectionWeights.Residual, new([2.0], [1.0], [[1.0]])], "static");
        var texts = Texts(Heatmap.ConnectionMatrix(m.Values, m.ReadingLabels, m.WritingLabels, "unfolded connection matrix (static), step 10"));
        Assert.Contains("unfolded connection matrix (static), step 10", texts);
        Assert.Contains("2", texts);   // c(out, 1) = B = 2
        Assert.Equal(["0", "1", "out"], m.ReadingLabels);
    }

    [Theory]
    [InlineData(7.9, "7.9")]
    [InlineData(-0.0312, "-0.031")]
    [InlineData(123.4, "123")]
    [InlineData(0.001234, "1.23E-3")]
    [InlineData(0, "0")]
    public void CellNumbersHaveThreeSignificantDigits(double v, string text) => Assert.Equal(text, Heatmap.Number(v));
}
