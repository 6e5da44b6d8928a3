using System.Globalization;
using HcService.Contract.Analysis;

namespace HcService.Cli.Terminal;

/// <summary>Numbers and times the way a person reads them in a terminal.</summary>
public static class Human
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>45s, 3m26s, 1h04m, 2d03h; "-" for none.</summary>
    public static string Duration(TimeSpan? span)
    {
        if (span is not { } d) return "-";
        if (d < TimeSpan.Zero) d = TimeSpan.Zero;
        return d.TotalSeconds < 60 ? $"{(int)d.TotalSeconds}s"
            : d.TotalMinutes < 60 ? $"{(int)d.TotalMinutes}m{d.Seconds:00}s"
            : d.TotalHours < 24 ? $"{(int)d.TotalHours}h{d.Minutes:00}m"
            : $"{(int)d.TotalDays}d{d.Hours:00}h";
    }

    /// <summary>"just now", "42s ago", "5m ago", "3h ago", "2d ago", then the date.</summary>
    public static string Ago(DateTimeOffset? time, DateTimeOffset now)
    {
        if (time is not { } t) return "-";
        var d = now - t;
        return d.TotalSeconds < 5 ? "just now"
            : d.TotalSeconds < 60 ? $"{(int)d.TotalSeconds}s ago"
            : d.TotalMinutes < 60 ? $"{(int)d.TotalMinutes}m ago"
            : d.TotalHours < 24 ? $"{(int)d.TotalHours}h ago"
            : d.TotalDays < 30 ? $"{(int)d.TotalDays}d ago"
            : t.UtcDateTime.ToString("yyyy-MM-dd", Ci);
    }

    /// <summary>A UTC time to the second: 2026-12-03 13:34:27Z.</summary>
    public static string Time(DateTimeOffset? time) => time is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", Ci) : "-";

    /// <summary>Token counts: 950, 12k, 1.2M.</summary>
    public static string Tokens(double tokens) => TokenFormat.Short(tokens);

    public static string Rate(double? tokensPerSecond) => tokensPerSecond is { } r ? $"{TokenFormat.Short(r)} tok/s" : "- tok/s";

    public static string Loss(double? loss) => loss is { } l ? l.ToString("F4", Ci) : "-";

    public static string Percent(double fraction) => (100 * fraction).ToString("0.0", Ci) + "%";
}
