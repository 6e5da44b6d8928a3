using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HcService.Cli.Terminal;

namespace HcService.Cli.Client;

/// <summary>`hc compare A B [C...] [--baseline A]` or `hc compare --group NAME`: GET /api/comparisons as tables. By
/// variant (the runs of one configuration at several seeds), paired by seed: mean +/- std, the paired delta with its 95%
/// interval and the verdict, the speedup over seeds, downstream deltas, confounds. By run, when every variant has one
/// run: validation loss at equal tokens, the speedup, downstream accuracies with standard errors. And the plot's URL.</summary>
static class CompareCommand
{
    public static Command Create()
    {
        var server = ClientCommands.ServerOption();
        var apiKey = ClientCommands.ApiKeyOption();
        var targets = new Argument<string[]>("runs-or-group")
            { Description = "Run ids (2 to 64; the first is the baseline unless --baseline says otherwise), or one group name", Arity = new ArgumentArity(0, 64) };
        var baseline = new Option<long?>("--baseline") { Description = "The baseline run (default: the first)" };
        var group = new Option<string?>("--group") { Description = "Compare an experiment group's runs (its baseline: the residual run); the same as giving its name" };
        var json = Output.JsonOption();
        var cmd = new Command("compare", "Compare runs with a baseline: by variant over seeds (paired deltas, 95% intervals, verdicts), loss at equal tokens, speedup, downstream accuracy")
            { targets, baseline, group, json, server, apiKey };
        cmd.Validators.Add(r =>
        {
            var given = r.GetValue(targets) ?? [];
            var ids = given.Where(t => long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out _)).ToList();
            var isGroup = r.GetValue(group) is not null || (given.Length == 1 && ids.Count == 0);
            if (isGroup && r.GetValue(baseline) is not null) r.AddError("--baseline is for run ids; a group's baseline is its base run");
            if (r.GetValue(group) is not null && given.Length > 0) r.AddError("give either run ids or a group, not both");
            else if (r.GetValue(group) is not null) return;
            else if (given.Length == 0) r.AddError("give at least two run ids, or a group name (hc compare 3 4, hc compare my-grid)");
            else if (ids.Count == given.Length && ids.Count < 2) r.AddError($"give at least two run ids to compare (got one: {given[0]}), or a group name");
            else if (ids.Count != given.Length && given.Length > 1) r.AddError($"give run ids (numbers) or one group name, not a mix ({string.Join(" ", given)})");
        });
        cmd.SetAction(async (r, ct) =>
        {
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            var given = r.GetValue(targets) ?? [];
            var name = r.GetValue(group) ?? (given.Length == 1 ? given[0] : null);
            if (name is not null)
            {
                using var response = await http.GetAsync($"/api/groups/{Uri.EscapeDataString(name)}", ct);
                var body = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
                var table = JsonNode.Parse(body)!;
                if (table["comparisonUrl"]?.GetValue<string>() is not { } url)
                {
                    Console.Error.WriteLine($"group '{name}' has one run: nothing to compare");
                    return ExitCodes.BadInput;
                }
                return await PrintUrl(http, url, r.GetValue(json), ct);
            }
            return await Print(http, given.Select(t => long.Parse(t, CultureInfo.InvariantCulture)).ToList(), r.GetValue(baseline), ct, r.GetValue(json));
        });
        return cmd;
    }

    internal static Task<int> Print(HttpClient http, IReadOnlyList<long> ids, long? baseline, CancellationToken ct, bool json = false) =>
        PrintUrl(http, $"/api/comparisons?runs={string.Join(',', ids)}" + (baseline is { } b ? $"&baseline={b}" : ""), json, ct);

    static string F(FormattableString s) => FormattableString.Invariant(s);

    static async Task<int> PrintUrl(HttpClient http, string url, bool json, CancellationToken ct)
    {
        using var response = await http.GetAsync(url, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
        var c = JsonNode.Parse(body)!;
        if (json) { Output.Json(c); return ExitCodes.Ok; }
        PrintVariants(c);
        // Per run as well when that is all there is: one run a variant, or every run a seed of the baseline's configuration.
        var variants = c["variants"]!.AsArray();
        if (variants.Count == 0 || (variants.All(v => v!["variant"]!["runs"]!.AsArray().Count == 1) && c["baselineVariant"]!["runs"]!.AsArray().Count == 1))
            PrintRuns(c);
        else Console.WriteLine("\n(per run: hc compare with one run of each variant)");
        Console.WriteLine($"\nplot: {http.BaseAddress!.ToString().TrimEnd('/')}{c["plotUrl"]}");
        return 0;
    }

    static string Variant(JsonNode v) =>
        $"{v["label"]} ({v["connection"]}{(v["rate"]!.GetValue<int>() > 1 ? $" {(v["connection"]!.ToString() == "frac" ? "m" : "x")}{v["rate"]}" : "")}; runs {string.Join(' ', v["runs"]!.AsArray())}; seeds {string.Join(' ', v["seeds"]!.AsArray())})";

    static string MeanStd(JsonNode s, string format, double scale = 1) =>
        (scale * s["mean"]!.GetValue<double>()).ToString(format, CultureInfo.InvariantCulture)
        + (s["std"]?.GetValue<double>() is { } std ? " +/- " + (scale * std).ToString(format, CultureInfo.InvariantCulture) : "");

    static string Interval(JsonNode d, string format, double scale = 1) =>
        (scale * d["mean"]!.GetValue<double>()).ToString(format, CultureInfo.InvariantCulture)
        + (d["low"]?.GetValue<double>() is { } lo && d["high"]?.GetValue<double>() is { } hi
            ? F($" [{(scale * lo).ToString(format, CultureInfo.InvariantCulture)}, {(scale * hi).ToString(format, CultureInfo.InvariantCulture)}]") : "");

    static string Verdict(JsonNode d, bool noise = false) => d["resolved"]!.GetValue<bool>() ? "resolved"
        : noise ? "noise (within 2 SE of the items)"
        : d["pairs"]!.GetValue<int>() == 1 ? "one seed: not resolved" : "not resolved";

    /// <summary>Each candidate variant against the baseline's, paired by seed: one table per candidate (the speedup cell a
    /// number with its interval, or "not reached"), the speedup sentences, confounds and the verdict below it.</summary>
    static void PrintVariants(JsonNode c)
    {
        Console.WriteLine($"baseline variant: {Variant(c["baselineVariant"]!)}");
        if (c["variants"]!.AsArray().Count == 0) Console.WriteLine("(every run is a seed of the baseline's configuration: no other variant to pair with)");
        foreach (var vc in c["variants"]!.AsArray())
        {
            Console.WriteLine($"\ncandidate variant: {Variant(vc!["variant"]!)}");
            var table = Output.Table("loss (paired by seed)", ">baseline", ">candidate", ">delta [95% interval]", "verdict", ">speedup [95%]");
            var notes = new List<string>();
            foreach (var curve in vc["curves"]!.AsArray())
            {
                var d = curve!["delta"]!;
                var speedup = "-";
                if (curve["speedup"] is JsonObject sp)
                {
                    var (pairs, reached) = (sp["pairs"]!.GetValue<int>(), sp["reached"]!.GetValue<int>());
                    var each = sp["speedups"]!.AsObject().Select(p => p.Value!.GetValue<double>()).ToList();
                    speedup = sp["interval"] is JsonObject i ? $"{Interval(i, "0.00")}x"
                        : reached == 0 ? "not reached"
                        : reached < pairs ? $"reached {reached}/{pairs}"
                        : (sp["lowerBounds"]!.GetValue<int>() > 0 ? ">=" : "") + each.Average().ToString("0.00", CultureInfo.InvariantCulture) + "x" + (pairs == 1 ? " (1 seed)" : "");
                    notes.Add($"speedup on {curve["metric"]}: {sp["summary"]}");
                }
                table.Row(curve["metric"]!.ToString(), MeanStd(curve["baseline"]!, "F4"), MeanStd(curve["candidate"]!, "F4"), Interval(d, "+0.0000;-0.0000"), Verdict(d), speedup);
            }
            var downstream = vc["downstream"]!.AsArray();
            foreach (var t in downstream.OrderBy(t => t!["name"]!.ToString() == "average acc" ? 1 : 0))
                table.Row(t!["name"]!.ToString(), MeanStd(t["baseline"]!, "F1", 100) + "%", MeanStd(t["candidate"]!, "F1", 100) + "%",
                    Interval(t["delta"]!, "+0.0;-0.0", 100) + "pt", Verdict(t["delta"]!, t["noise"]!.GetValue<bool>()), "");
            Output.Write(table);
            foreach (var note in notes) Console.WriteLine($"  {note}");
            if (vc["confounded"]!.GetValue<bool>())
                foreach (var d in vc["confounds"]!.AsArray())
                    Console.WriteLine($"  CONFOUNDED: {d!["field"]} is {d["baseline"]} in the baseline, {d["candidate"]} in the candidate");
            Console.WriteLine($"  verdict: {vc["verdict"]}");
        }
    }

    /// <summary>Each candidate run against the baseline run: a table of losses (the speedup cell a number or "not reached")
    /// and one of downstream accuracies with standard errors.</summary>
    static void PrintRuns(JsonNode c)
    {
        var b0 = c["baseline"]!;
        Console.WriteLine($"\nby run: baseline run {b0["id"]} {b0["name"]} ({b0["connection"]}, {b0["status"]})");
        foreach (var cand in c["candidates"]!.AsArray())
        {
            var run = cand!["run"]!;
            Console.WriteLine($"\ncandidate: run {run["id"]} {run["name"]} ({RunViews.Connection(run)}, {run["status"]})");
            var table = Output.Table("loss", ">baseline", ">candidate", ">delta", ">speedup");
            var notes = new List<string>();
            foreach (var curve in cand["validation"]!.AsArray().Append(cand["training"]).OfType<JsonNode>())
            {
                var s = curve["speedup"]!;
                var speedup = s["speedup"]?.GetValue<double>() is { } x ? (s["isLowerBound"]!.GetValue<bool>() ? ">=" : "") + x.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "not reached";
                notes.Add($"{curve["metric"]}: {s["summary"]}");
                table.Row(curve["metric"]!.ToString(), F($"{curve["baselineFinal"]!.GetValue<double>():F4}"), F($"{curve["candidateFinal"]!.GetValue<double>():F4}"),
                    F($"{curve["deltaAtLastCommon"]?.GetValue<double>() ?? double.NaN:+0.0000;-0.0000}"), speedup);
            }
            Output.Write(table);
            foreach (var note in notes) Console.WriteLine($"  {note}");
            var tasks = cand["tasks"]!.AsArray();
            if (tasks.Count == 0) { Console.WriteLine("  downstream: no evaluation results for both runs"); continue; }
            string Pct(JsonNode t, string value, string stderr, string format) => (100 * t[value]!.GetValue<double>()).ToString(format, CultureInfo.InvariantCulture)
                + (t[stderr]?.GetValue<double>() is { } se ? " +/- " + (100 * se).ToString("F1", CultureInfo.InvariantCulture) : "");
            var acc = Output.Table("downstream", ">baseline %", ">candidate %", ">delta pt", "");
            foreach (var t in tasks)
                acc.Row($"{t!["task"]} {t["metric"]}", Pct(t, "baseline", "baselineStderr", "F1"), Pct(t, "candidate", "candidateStderr", "F1"),
                    Pct(t, "delta", "deltaStderr", "+0.0;-0.0"), t["noise"]!.GetValue<bool>() ? "noise: within 2 SE" : "");
            Output.Write(acc);
        }
    }
}
