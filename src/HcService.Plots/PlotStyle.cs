using ScottPlot;

namespace HcService.Plots;

/// <summary>The look every picture shares (a sans-serif font, DejaVu Sans where installed; a light grid) and the SVG
/// output.</summary>
static class PlotStyle
{
    /// <summary>DejaVu Sans where installed (scripts/setup.sh and the image install it); else ScottPlot's default. ScottPlot's
    /// own <c>Fonts.Sans</c> resolves to DejaVu Serif on Debian, whose fontconfig is not consulted.</summary>
    static readonly string Font = SkiaSharp.SKFontManager.Default.GetFontFamilies().Contains("DejaVu Sans") ? "DejaVu Sans" : Fonts.Default;

    /// <summary>Also ScottPlot's process-wide default, so that text added as a plottable (a heatmap's cell values), the
    /// legend and the colour bar use it from the first picture on, not only the labels that <c>Font.Set</c> restyles.</summary>
    static PlotStyle() => Fonts.Default = Font;

    public static Plot New()
    {
        var plot = new Plot();
        plot.Grid.MajorLineColor = Colors.Black.WithAlpha(0.1);
        return plot;
    }

    /// <summary>The plot as an SVG document. The font is set last, so that it reaches the title, axis labels and ticks
    /// added after <see cref="New"/>. Embedded bitmaps (a heatmap's cells, a colour bar) are drawn with sharp pixel edges: a browser
    /// would otherwise blur a 5 x 5 matrix into a gradient when it scales the image up.</summary>
    public static string Svg(Plot plot, int width, int height)
    {
        plot.Font.Set(Font);
        return plot.GetSvgXml(width, height).Replace("<image ", "<image style=\"image-rendering:pixelated\" ", StringComparison.Ordinal);
    }
}
