using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace HcService.Contract.Jobs;

/// <summary>
/// A number of tokens, written in JSON as an integer or as a string with a suffix: "500B", "2M", "10K", "1.5T"
/// (decimal: K = 1e3, M = 1e6, B = 1e9, T = 1e12; case-insensitive; underscores and commas allowed).
/// </summary>
[JsonConverter(typeof(TokenCountJsonConverter))]
public readonly record struct TokenCount(long Value)
{
    /// <summary>What a token count may be, for error messages and the API reference.</summary>
    public const string Accepted = "a token count: a non-negative integer such as 200000, or a string like \"200K\", \"1.5M\" or \"2B\" "
        + "(digits, an optional decimal fraction, an optional suffix K = 1e3, M = 1e6, B = 1e9 or T = 1e12; a whole number of tokens)";

    /// <summary>The string form as a pattern (JSON Schema, ECMA-262): digits, an optional fraction, an optional suffix;
    /// "_" and "," may group digits. <see cref="TryParse"/> also takes surrounding white space.</summary>
    public const string Pattern = "^[0-9][0-9_,]*(\\.[0-9][0-9_,]*)?[KkMmBbTt]?$";

    public static bool TryParse(string? text, out TokenCount count)
    {
        count = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim().Replace("_", "").Replace(",", "");
        // Digits, an optional fraction, an optional suffix: "2M", "1.5T", "500000". No exponent ("1e3K"), sign or space.
        if (!System.Text.RegularExpressions.Regex.IsMatch(s, @"^[0-9]+(\.[0-9]+)?[KkMmBbTt]?$")) return false;
        double scale = char.ToUpperInvariant(s[^1]) switch { 'K' => 1e3, 'M' => 1e6, 'B' => 1e9, 'T' => 1e12, _ => 1 };
        if (scale != 1) s = s[..^1];
        if (!double.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var v) || double.IsNaN(v)) return false;
        var total = v * scale;
        if (total < 0 || total > long.MaxValue || Math.Abs(total - Math.Round(total)) > 1e-6) return false;
        count = new TokenCount((long)Math.Round(total));
        return true;
    }

    public override string ToString() => Value switch
    {
        >= 1_000_000_000_000 when Value % 1_000_000_000_000 == 0 => $"{Value / 1_000_000_000_000}T",
        >= 1_000_000_000 when Value % 1_000_000_000 == 0 => $"{Value / 1_000_000_000}B",
        >= 1_000_000 when Value % 1_000_000 == 0 => $"{Value / 1_000_000}M",
        >= 1_000 when Value % 1_000 == 0 => $"{Value / 1_000}K",
        _ => Value.ToString(CultureInfo.InvariantCulture),
    };
}

sealed class TokenCountJsonConverter : JsonConverter<TokenCount>
{
    public override TokenCount Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) && n >= 0) return new TokenCount(n);
        if (reader.TokenType == JsonTokenType.String && TokenCount.TryParse(reader.GetString(), out var c)) return c;
        object given = reader.TokenType switch
        {
            JsonTokenType.String => reader.GetString() ?? "",
            JsonTokenType.Number => reader.TryGetDouble(out var d) ? d : System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
            JsonTokenType.True => "(true)",
            JsonTokenType.False => "(false)",
            JsonTokenType.StartObject => "(an object)",
            JsonTokenType.StartArray => "(a list)",
            _ => $"({reader.TokenType})",
        };
        throw new InvalidTokenCountException(given);
    }

    public override void Write(Utf8JsonWriter writer, TokenCount value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}

/// <summary>A JSON value that is not a token count; <see cref="Given"/> is the value as read (a string or a number) or
/// a description of it ("(an object)", "(true)"). JobSpec.Parse turns it into an error naming the field and
/// <see cref="TokenCount.Accepted"/>.</summary>
public sealed class InvalidTokenCountException(object given)
    : JsonException($"{given} is not {TokenCount.Accepted}")
{
    public object Given { get; } = given;
}
