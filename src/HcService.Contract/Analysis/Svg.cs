using System.Globalization;
using System.Xml.Linq;

namespace HcService.Contract.Analysis;

/// <summary>
/// The few SVG helpers the charts share. Charts are built as <see cref="XElement"/> trees, so every label is escaped
/// and the output is always well-formed XML; numbers are written with the invariant culture.
/// </summary>
static class Svg
{
    public static readonly XNamespace Ns = "http://www.w3.org/2000/svg";

    public static XElement Root(double width, double height, params object[] content) =>
        new(Ns + "svg", new XAttribute("width", N(width)), new XAttribute("height", N(height)),
            new XAttribute("viewBox", $"0 0 {N(width)} {N(height)}"), new XAttribute("font-family", "sans-serif"),
            new XAttribute("font-size", "11"), content);

    public static XElement El(string name, params object[] content) => new(Ns + name, content);

    public static XAttribute A(string name, object value) => new(name, value is double d ? N(d) : value);

    public static XElement Text(double x, double y, string text, string anchor = "middle", params object[] extra) =>
        El("text", A("x", x), A("y", y), A("text-anchor", anchor), extra, text);

    /// <summary>A number for an attribute: invariant culture, at most 2 decimals.</summary>
    public static string N(double v) => Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>A tick label: up to 4 significant digits, invariant culture.</summary>
    public static string Label(double v) => Math.Abs(v) < 1e-12 ? "0" : v.ToString("G4", CultureInfo.InvariantCulture);

    public static string Render(XElement root) => root.ToString(SaveOptions.None);

    /// <summary>"Nice" linear ticks (steps of 1, 2 or 5 times a power of ten), about <paramref name="count"/> of them, inside [lo, hi].</summary>
    public static double[] LinearTicks(double lo, double hi, int count = 6)
    {
        if (!(hi > lo)) return [lo];
        var raw = (hi - lo) / count;
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var step = new[] { 1.0, 2, 5, 10 }.Select(m => m * magnitude).First(s => s >= raw);
        var first = Math.Ceiling(lo / step - 1e-9) * step;
        var ticks = new List<double>();
        for (var t = first; t <= hi + step * 1e-9; t += step) ticks.Add(Math.Abs(t) < step * 1e-9 ? 0 : t);
        return [.. ticks];
    }

    /// <summary>Log ticks: 1, 2, 5 times powers of ten inside [lo, hi] (only powers of ten when that gives 3 or more).</summary>
    public static double[] LogTicks(double lo, double hi)
    {
        var all = new List<double>();
        for (var e = Math.Floor(Math.Log10(lo)); e <= Math.Ceiling(Math.Log10(hi)); e++)
            foreach (var m in new[] { 1.0, 2, 5 })
            {
                var t = m * Math.Pow(10, e);
                if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) all.Add(t);
            }
        var decades = all.Where(t => Math.Abs(Math.Log10(t) - Math.Round(Math.Log10(t))) < 1e-9).ToArray();
        return decades.Length >= 3 ? decades : [.. all];
    }
}
