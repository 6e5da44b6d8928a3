using System.Xml.Linq;
using HcService.Contract.Analysis;
using HcService.Core.Analysis;

namespace HcService.Core.Tests;

/// <summary>The SVG charts are well-formed XML with one element per series or cell, and colours as documented.</summary>
public class SvgChartTests
{
    static readonly XNamespace Ns = "http://www.w3.org/2000/svg";

    static IEnumerable<XElement> WithClass(XDocument doc, string name, string cls) =>
        doc.Descendants(Ns + name).Where(e => (string?)e.Attribute("class") == cls);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LineChartHasOnePathPerSeriesAndALegend(bool log)
    {
        var series = new[]
        {
            LossCurve.From("baseline", [(1e6, 4.0), (1e7, 3.5), (1e8, 3.2)]),
            LossCurve.From("DHC x4 <&>", [(1e6, 3.9), (1e7, 3.4), (5e7, 3.2), (1e8, 3.1)]),
            LossCurve.From("SHC x2", [(2e6, 3.95), (1e8, 3.15)]),
        };
        var svg = SvgLineChart.Render(series, new LineChartOptions(Title: "C4 validation loss", LogTokens: log));
        var doc = XDocument.Parse(svg);
        var paths = WithClass(doc, "path", "series").ToList();
        Assert.Equal(3, paths.Count);
        Assert.Equal(3, doc.Descendants(Ns + "path").Count());
        Assert.Equal(["baseline", "DHC x4 <&>", "SHC x2"], paths.Select(p => (string)p.Attribute("data-name")!));
        Assert.Equal(4, ((string)paths[1].Attribute("d")!).Split(' ').Length);   // one command per point
        Assert.Equal(3, WithClass(doc, "line", "legend").Count());
        var texts = doc.Descendants(Ns + "text").Select(t => t.Value).ToList();
        Assert.Contains("DHC x4 <&>", texts);
        Assert.Contains(log ? "tokens (log scale)" : "tokens", texts);
        Assert.Contains(log ? "10M" : "100M", texts);   // an x tick label
        // The first point of the baseline sits at the left edge of the plot, its last at the right edge.
        var d = ((string)paths[0].Attribute("d")!).Split(' ');
        Assert.StartsWith("M64,", d[0]);
        Assert.StartsWith("L550,", d[^1]);   // left 64 + plot width 720 - 64 - 170
    }

    [Fact]
    public void LineChartRejectsZeroTokensOnALogAxis()
    {
        var e = Assert.Throws<ArgumentException>(() => SvgLineChart.Render([LossCurve.From("run a", [(0, 4), (10, 3)])], new(LogTokens: true)));
        Assert.Contains("'run a' starts at 0", e.Message);
    }

    [Fact]
    public void HeatmapHasOneRectPerCellWithDivergingColours()
    {
        double[][] values = [[1, 0, 0], [-1, 0.5, 0], [2, -0.5, 0.25]];
        var svg = SvgHeatmap.Render(values, ["0", "1", "out"], ["emb", "0", "1"], new HeatmapOptions(Limit: 1));
        var doc = XDocument.Parse(svg);
        var cells = WithClass(doc, "rect", "cell").ToList();
        Assert.Equal(9, cells.Count);
        string Fill(int r, int c) => (string)cells[r * 3 + c].Attribute("fill")!;
        Assert.Equal("#b2182b", Fill(0, 0));   // +limit: full red
        Assert.Equal("#ffffff", Fill(0, 1));   // 0: white
        Assert.Equal("#2166ac", Fill(1, 0));   // -limit: full blue
        Assert.Equal("#d98c95", Fill(1, 1));   // +limit/2: halfway from white to red, (217, 140, 149)
        Assert.Equal("#b2182b", Fill(2, 0));   // beyond the limit: clamped
        Assert.Equal("1, emb: -1", cells[3].Element(Ns + "title")!.Value);
        Assert.Single(WithClass(doc, "rect", "colorbar"));
        var texts = doc.Descendants(Ns + "text").Select(t => t.Value).ToList();
        Assert.Contains("reading sublayer k", texts);
        Assert.Contains("writing sublayer j", texts);
    }

    [Fact]
    public void ConnectionMatrixHeatmapUsesTheLargestMagnitudeAsLimit()
    {
        var m = ConnectionMatrix.Unfold([ConnectionWeights.Residual, new([2.0], [1.0], [[1.0]])], "static");
        var doc = XDocument.Parse(SvgHeatmap.Render(m));
        var cells = WithClass(doc, "rect", "cell").ToList();
        Assert.Equal(9, cells.Count);
        Assert.Equal("#b2182b", (string)cells[2 * 3 + 2].Attribute("fill")!);   // c(out, 1) = 2, the largest
        Assert.Equal("#d98c95", (string)cells[1 * 3 + 0].Attribute("fill")!);   // c(1, emb) = 1 = limit / 2
        Assert.Contains("connection matrix (static)", doc.Descendants(Ns + "text").Select(t => t.Value));
        Assert.Equal(-3.0, Assert.Throws<ArgumentOutOfRangeException>(() => SvgHeatmap.Colour(1, -3)).ActualValue);
    }
}
