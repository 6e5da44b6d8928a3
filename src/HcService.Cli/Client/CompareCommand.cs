using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace HcService.Cli.Client;

/// <summary>`hc compare A B [C...] [--baseline A]`: GET /api/comparisons as tables: validation loss at equal tokens,
/// the speedup (tokens to reach the baseline's final loss), downstream accuracy deltas, and the plot's URL.</summary>
static class CompareCommand
{
    public static Command Create()
    {
        var server = ClientCommands.ServerOption();
        var apiKey = ClientCommands.ApiKeyOption();
        var runs = new Argument<long[]>("runs") { Description = "Run ids; the first is the baseline unless --baseline says otherwise", Arity = new ArgumentArity(2, 20) };
        var baseline = new Option<long?>("--baseline") { Description = "The baseline run (default: the first)" };
        var cmd = new Command("compare", "Compare runs with a baseline: loss at equal tokens, speedup, downstream accuracy") { runs, baseline, server, apiKey };
        cmd.SetAction(async (r, ct) =>
        {
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            return await Print(http, r.GetValue(runs)!, r.GetValue(baseline), ct);
        });
        return cmd;
    }

    internal static async Task<int> Print(HttpClient http, IReadOnlyList<long> ids, long? baseline, CancellationToken ct)
    {
        var url = $"/api/comparisons?runs={string.Join(',', ids)}" + (baseline is { } b ? $"&baseline={b}" : "");
        using var response = await http.GetAsync(url, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
        var c = JsonNode.Parse(body)!;
        var b0 = c["baseline"]!;
        Console.WriteLine($"baseline: run {b0["id"]} {b0["name"]} ({b0["connection"]}, {b0["status"]})");
        foreach (var cand in c["candidates"]!.AsArray())
        {
            var run = cand!["run"]!;
            Console.WriteLine($"\ncandidate: run {run["id"]} {run["name"]} ({run["connection"]} x{run["rate"]}, {run["status"]})");
            Console.WriteLine($"  {"loss",-32} {"baseline",9} {"candidate",9} {"delta",8}  speedup");
            foreach (var curve in cand["validation"]!.AsArray().Append(cand["training"]).OfType<JsonNode>())
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {curve["metric"],-32} {curve["baselineFinal"]!.GetValue<double>(),9:F4} {curve["candidateFinal"]!.GetValue<double>(),9:F4} {curve["deltaAtLastCommon"]?.GetValue<double>() ?? double.NaN,8:+0.0000;-0.0000}  {curve["speedup"]!["summary"]}"));
            var tasks = cand["tasks"]!.AsArray();
            if (tasks.Count == 0) { Console.WriteLine("  downstream: no evaluation results for both runs"); continue; }
            Console.WriteLine($"  {"downstream",-32} {"baseline",9} {"candidate",9} {"delta",8}");
            foreach (var t in tasks)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {$"{t!["task"]} {t["metric"]}",-32} {100 * t["baseline"]!.GetValue<double>(),8:F1}% {100 * t["candidate"]!.GetValue<double>(),8:F1}% {100 * t["delta"]!.GetValue<double>(),+7:+0.0;-0.0}pt"));
        }
        Console.WriteLine($"\nplot: {http.BaseAddress!.ToString().TrimEnd('/')}{c["plotUrl"]}");
        return 0;
    }
}
