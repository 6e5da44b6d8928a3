using System.Globalization;

namespace HcService.Contract.Analysis;

/// <summary>Token counts the way people write them: 950, 12k, 1.2M, 500B (three significant digits at most).</summary>
public static class TokenFormat
{
    public static string Short(double tokens)
    {
        var abs = Math.Abs(tokens);
        var (scale, suffix) = abs switch
        {
            >= 1e12 => (1e12, "T"),
            >= 1e9 => (1e9, "B"),
            >= 1e6 => (1e6, "M"),
            >= 1e3 => (1e3, "k"),
            _ => (1.0, ""),
        };
        var v = tokens / scale;
        var format = Math.Abs(v) >= 100 ? "0" : Math.Abs(v) >= 10 ? "0.#" : "0.##";
        return v.ToString(format, CultureInfo.InvariantCulture) + suffix;
    }
}
