namespace HcService.Contract.Config;

/// <summary>One invalid field: its JSON path, the value given, and what is allowed.</summary>
public sealed record ConfigError(string Field, object? Value, string Allowed)
{
    public override string ToString() => $"{Field} = {Format(Value)}: must be {Allowed}";

    static string Format(object? v) => v switch
    {
        null => "null",
        string s => $"'{s}'",
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "?",
    };
}

/// <summary>Raised when a configuration is invalid; carries every error, not just the first.</summary>
public sealed class ConfigException(IReadOnlyList<ConfigError> errors)
    : ArgumentException(string.Join("; ", errors))
{
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}

/// <summary>The kebab-case names used in specs, the CLI and tables for the config enums.</summary>
public static class Names
{
    public static string Of(ConnectionType t) => t switch
    {
        ConnectionType.Residual => "residual",
        ConnectionType.PostNorm => "post-norm",
        ConnectionType.StaticHc => "static-hc",
        ConnectionType.DynamicHc => "dynamic-hc",
        ConnectionType.Frac => "frac",
        ConnectionType.Mhc => "mhc",
        ConnectionType.MhcLite => "mhc-lite",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    /// <summary>Connection names in the order of <see cref="ConnectionType"/>.</summary>
    public static readonly IReadOnlyList<string> Connections = ["residual", "post-norm", "static-hc", "dynamic-hc", "frac", "mhc", "mhc-lite"];

    public static readonly IReadOnlyList<string> MhcInits = ["identity", "lite"];

    public static bool TryParseConnection(string s, out ConnectionType type)
    {
        for (var i = 0; i < Connections.Count; i++)
            if (string.Equals(Connections[i], s, StringComparison.OrdinalIgnoreCase)) { type = (ConnectionType)i; return true; }
        type = default;
        return false;
    }

    public static string Of(Architecture a) => a == Architecture.Dense ? "dense" : "moe";
}

/// <summary>What names, tags and other labels may contain.</summary>
public static class Text
{
    /// <summary>True when every character can be shown as itself: no control characters, no format characters (bidi
    /// overrides and isolates, zero-width spaces and joiners, the BOM), no line or paragraph separators, no unpaired
    /// surrogates, private-use or unassigned code points. Such characters make one label look like another.</summary>
    public static bool IsPrintable(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            // Zero-width (non-)joiners belong to Persian and Indic words and emoji sequences: allowed between two
            // visible characters, never at an end or next to another invisible one.
            if (s[i] is '\u200C' or '\u200D')
            {
                if (i == 0 || i == s.Length - 1 || !Visible(s[i - 1]) || !Visible(s[i + 1])) return false;
                continue;
            }
            if (char.IsHighSurrogate(s[i]))
            {
                if (i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1])) return false;
                if (!Printable(System.Globalization.CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(s[i], s[i + 1])))) return false;
                i++;
            }
            else if (!Printable(char.GetUnicodeCategory(s[i]))) return false;
        }
        return true;
    }

    static bool Visible(char c) => char.IsSurrogate(c) || (Printable(char.GetUnicodeCategory(c)) && !char.IsWhiteSpace(c));

    static bool Printable(System.Globalization.UnicodeCategory c) => c is not (System.Globalization.UnicodeCategory.Control
        or System.Globalization.UnicodeCategory.Format or System.Globalization.UnicodeCategory.LineSeparator
        or System.Globalization.UnicodeCategory.ParagraphSeparator or System.Globalization.UnicodeCategory.Surrogate
        or System.Globalization.UnicodeCategory.PrivateUse or System.Globalization.UnicodeCategory.OtherNotAssigned);
}
