using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace HcService.Contract.Config;

/// <summary>
/// What a System.Text.Json error says, for people: where it is (1-based line and column, as editors count) and why,
/// without the reader's 0-based "LineNumber | BytePositionInLine" tail or .NET type names.
/// </summary>
public static partial class JsonErrors
{
    /// <summary>"line 3, column 17": 1-based; the column counts characters of <paramref name="text"/> when it is given
    /// (the reader counts bytes), else bytes. Null when the reader gave no position.</summary>
    public static string? Where(JsonException e, string? text = null)
    {
        if (e.LineNumber is not { } line || e.BytePositionInLine is not { } bytes) return null;
        var column = bytes + 1;
        if (text is not null && LineAt(text, line) is { } content)
        {
            var utf8 = Encoding.UTF8.GetBytes(content);
            column = Encoding.UTF8.GetCharCount(utf8, 0, (int)Math.Min(bytes, utf8.Length)) + 1;
        }
        return $"line {line + 1}, column {column}";
    }

    /// <summary>The reader's reason, in words where it is a common one, without its position tail.</summary>
    public static string Reason(JsonException e)
    {
        var reason = PositionTail().Replace(e.Message, "").Trim();
        if (reason.StartsWith("Expected depth to be zero", StringComparison.Ordinal))
            return "the text ends before every object and array in it is closed (a truncated file?)";
        return reason.Length > 0 ? reason : "the reader stopped here";
    }

    /// <summary>For an error that says a value has the wrong type ("could not be converted to System.Int32"), what the
    /// field takes in words ("an integer"); null for any other error.</summary>
    public static string? ExpectedType(JsonException e)
    {
        if (ConvertedTo().Match(e.Message) is not { Success: true } m) return null;
        var type = m.Groups[1].Value;
        if (type.Contains("List`1", StringComparison.Ordinal))
            return type.Contains("System.String", StringComparison.Ordinal) ? "a list of strings" : "a list";
        if (type.Contains("System.Int", StringComparison.Ordinal)) return "an integer";
        if (type.Contains("System.Double", StringComparison.Ordinal) || type.Contains("System.Single", StringComparison.Ordinal)) return "a number";
        if (type.Contains("System.Boolean", StringComparison.Ordinal)) return "true or false";
        if (type.Contains("System.String", StringComparison.Ordinal)) return "a string";
        return "an object";
    }

    static string? LineAt(string text, long line)
    {
        var start = 0;
        for (long i = 0; i < line; i++)
        {
            start = text.IndexOf('\n', start) + 1;
            if (start == 0) return null;
        }
        var end = text.IndexOf('\n', start);
        return end < 0 ? text[start..] : text[start..end];
    }

    [GeneratedRegex(@"\s*(Path: [^|]*\|\s*)?LineNumber: \d+ \| BytePositionInLine: \d+\.?\s*$")]
    private static partial Regex PositionTail();

    [GeneratedRegex(@"could not be converted to (\S+?)\.?(\s|$)")]
    private static partial Regex ConvertedTo();
}
