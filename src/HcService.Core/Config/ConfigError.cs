namespace HcService.Core.Config;

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
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    public static readonly IReadOnlyList<string> Connections = ["residual", "post-norm", "static-hc", "dynamic-hc"];

    public static bool TryParseConnection(string s, out ConnectionType type)
    {
        for (var i = 0; i < Connections.Count; i++)
            if (string.Equals(Connections[i], s, StringComparison.OrdinalIgnoreCase)) { type = (ConnectionType)i; return true; }
        type = default;
        return false;
    }

    public static string Of(Architecture a) => a == Architecture.Dense ? "dense" : "moe";
}
