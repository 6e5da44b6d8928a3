using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using HcService.Cli.Terminal;

namespace HcService.Cli.Client;

/// <summary>`hc groups submit FILE` and `hc groups show NAME`: experiment groups (a base spec, variants merged onto it,
/// optionally every one at several seeds) through POST /api/groups and GET /api/groups/{name}.</summary>
static class GroupsCommand
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    public static Command Create()
    {
        var server = ClientCommands.ServerOption();
        var apiKey = ClientCommands.ApiKeyOption();

        var file = new Argument<string>("file") { Description = "Group JSON: {\"name\", \"base\": spec, \"variants\": [partial specs], \"seeds\": [1, 2, 3]} (examples/science/)" };
        var submit = new Command("submit", "Submit an experiment group: every variant (and the base) once per seed") { file, server, apiKey };
        submit.SetAction(async (r, ct) =>
        {
            var path = r.GetValue(file)!;
            if (!File.Exists(path)) throw new HcService.Contract.Config.ConfigException([new("file", path, "an existing JSON file")]);
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            using var response = await http.PostAsync("/api/groups", new StringContent(await File.ReadAllTextAsync(path, ct), Encoding.UTF8, "application/json"), ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
            var created = JsonNode.Parse(body)!;
            var runs = created["runs"]!.AsArray();
            Console.WriteLine($"group {created["group"]}: {runs.Count} runs ({string.Join(", ", runs.Select(x => $"{x!["id"]} {x["name"]}"))})");
            Console.WriteLine($"follow: hc groups show {created["group"]}, or {http.BaseAddress}#/groups/{Uri.EscapeDataString(created["group"]!.GetValue<string>())}");
            return ExitCodes.Ok;
        });

        var name = new Argument<string>("name") { Description = "Group name" };
        var json = Output.JsonOption();
        var show = new Command("show", "A group's table in the paper's layout: per variant over seeds, then per run") { name, json, server, apiKey };
        show.SetAction(async (r, ct) =>
        {
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            using var response = await http.GetAsync($"/api/groups/{Uri.EscapeDataString(r.GetValue(name)!)}", ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
            var table = JsonNode.Parse(body)!;
            if (r.GetValue(json)) Output.Json(table);
            else Print(table, http.BaseAddress!);
            return ExitCodes.Ok;
        });

        return new Command("groups", "Experiment groups: submit a grid, show its table") { submit, show };
    }

    static string Num(JsonNode? n, string format, double scale = 1) => n is JsonValue v && v.TryGetValue<double>(out var d) ? (scale * d).ToString(format, Ci) : "-";

    static void Print(JsonNode g, Uri server)
    {
        var sets = g["validationSets"]!.AsArray().Select(s => s!.GetValue<string>()).ToList();
        Console.WriteLine($"group {g["group"]} (baseline run {g["baselineRunId"]?.ToString() ?? "-"}; deltas are candidate - baseline, paired by seed, 95% t intervals)");
        var variants = Output.Table(["variant", "connection", ">seeds", .. sets.SelectMany(s => new[] { $">val loss {s}", $">delta {s} [95%]" }), ">downstream avg", "verdict"]);
        foreach (var v in g["variants"]!.AsArray())
        {
            var info = v!["variant"]!;
            var cells = new List<string?> { info["label"]!.ToString(), RunViews.Connection(info), info["seeds"]!.AsArray().Count.ToString(Ci) };
            foreach (var s in sets)
            {
                var loss = v["validationLoss"]![s];
                cells.Add(loss is null ? "-" : Num(loss["mean"], "F4") + (loss["std"] is JsonValue ? " +/- " + Num(loss["std"], "F4") : ""));
                var d = v["lossDelta"]![s];
                cells.Add(v["isBaseline"]!.GetValue<bool>() ? "(baseline)" : d is null ? "-"
                    : Num(d["mean"], "+0.0000;-0.0000") + (d["low"] is JsonValue ? $" [{Num(d["low"], "+0.0000;-0.0000")}, {Num(d["high"], "+0.0000;-0.0000")}]" : ""));
            }
            cells.Add(v["downstreamAverage"] is JsonObject avg ? Num(avg["mean"], "F1", 100) + "%" : "-");
            cells.Add(v["isBaseline"]!.GetValue<bool>() ? "" : v["verdict"]?.ToString() ?? "-");
            variants.Row([.. cells]);
        }
        Output.Write(variants);

        var runs = Output.Table([">run", "name", "connection", "status", ">seed", .. sets.SelectMany(s => new[] { $">loss {s}", ">ppl", ">delta" }), ">downstream avg", ">delta"]);
        foreach (var row in g["rows"]!.AsArray())
        {
            var run = row!["run"]!;
            var cells = new List<string?> { run["id"]!.ToString(), run["name"]!.ToString(), RunViews.Connection(run), run["status"]!.ToString(), run["seed"]?.ToString() };
            foreach (var s in sets)
            {
                cells.Add(Num(row["validationLoss"]![s], "F4"));
                cells.Add(Num(row["perplexity"]![s], "F2"));
                cells.Add(row["isBaseline"]!.GetValue<bool>() ? "" : Num(row["lossDelta"]![s], "+0.0000;-0.0000"));
            }
            cells.Add(row["downstreamAverage"] is JsonValue ? Num(row["downstreamAverage"], "F1", 100) + "%" + (row["downstreamStderr"] is JsonValue ? " +/- " + Num(row["downstreamStderr"], "F1", 100) : "") : "-");
            cells.Add(row["isBaseline"]!.GetValue<bool>() ? "" : Num(row["downstreamDelta"], "+0.0;-0.0", 100) + (row["downstreamNoise"]!.GetValue<bool>() ? " (noise)" : ""));
            runs.Row([.. cells]);
        }
        Console.WriteLine();
        Output.Write(runs);
        var root = server.ToString().TrimEnd('/');
        Console.WriteLine($"\nweb: {root}/#/groups/{Uri.EscapeDataString(g["group"]!.GetValue<string>())}");
        if (g["comparisonUrl"]?.GetValue<string>() is { } url) Console.WriteLine($"compare: hc compare {g["group"]} ({root}{url})");
    }
}
