using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace HcService.Cli.Terminal;

/// <summary>What read commands print: tables for people (Spectre.Console), or the API's JSON with --json for scripts.</summary>
public static class Output
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>`--json`: the API's answer as is, indented, without \u escapes of '+' or non-ASCII text.</summary>
    public static Option<bool> JsonOption() => new("--json") { Description = "Print the API's JSON (for scripts) instead of the human summary" };

    public static void Json(JsonNode? node) => Console.WriteLine(node?.ToJsonString(Indented) ?? "null");

    /// <summary>A table with one header row; columns named with a leading '>' are right-aligned (numbers).</summary>
    public static Table Table(params IEnumerable<string> columns)
    {
        var table = new Table { Border = TableBorder.Horizontal, ShowRowSeparators = false };
        foreach (var c in columns)
        {
            var column = new TableColumn(Markup.Escape(c.TrimStart('>'))) { NoWrap = true };
            table.AddColumn(c.StartsWith('>') ? column.RightAligned() : column);
        }
        return table;
    }

    public static void Row(this Table table, params string?[] cells) => table.AddRow(cells.Select(c => (Spectre.Console.Rendering.IRenderable)new Text(c ?? "-")).ToArray());

    /// <summary>Writes a table (nothing when it has no rows); a pipe or a CI log gets the table at full width instead of 80 columns.</summary>
    public static void Write(Table table)
    {
        if (table.Rows.Count == 0) return;
        if (Console.IsOutputRedirected && AnsiConsole.Profile.Width < 400) AnsiConsole.Profile.Width = 400;
        AnsiConsole.Write(table);
    }
}
