using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

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
        var runs = new Argument<long[]>("runs") { Description = "Run ids (2 to 64); the first is the baseline unless --baseline says otherwise", Arity = new ArgumentArity(0, 64) };
        var baseline = new Option<long?>("--baseline") { Description = "The baseline run (default: the first)" };
        var group = new Option<string?>("--group") { Description = "Compare an experiment group's runs (its baseline: the residual run) instead of listed runs" };
        var cmd = new Command("compare", "Compare runs with a baseline: by variant over seeds (paired deltas, 95% intervals, verdicts), loss at equal tokens, speedup, downstream accuracy")
            { runs, baseline, group, server, apiKey };
        cmd.Validators.Add(r =>
        {
            var count = r.GetValue(runs)?.Length ?? 0;
            if (r.GetValue(group) is not null && count > 0) r.AddError("give either run ids or --group, not both");
            else if (r.GetValue(group) is null && count < 2) r.AddError($"give at least two run ids (got {count}), or --group NAME");
        });
        cmd.SetAction(async (r, ct) =>
        {
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            if (r.GetValue(group) is { } name)
            {
                using var response = await http.GetAsync($"/api/groups/{Uri.EscapeDataString(name)}", ct);
                var body = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
                var table = JsonNode.Parse(body)!;
                if (table["comparisonUrl"]?.GetValue<string>() is not { } url)
                {
                    Console.Error.WriteLine($"group '{name}' has one run: nothing to compare");
                    return 1;
                }
                return await PrintUrl(http, url, ct);
            }
            return await Print(http, r.GetValue(runs)!, r.GetValue(baseline), ct);
        });
        return cmd;
    }

    internal static Task<int> Print(HttpClient http, IReadOnlyList<long> ids, long? baseline, CancellationToken ct) =>
        PrintUrl(http, $"/api/comparisons?runs={string.Join(',', ids)}" + (baseline is { } b ? $"&baseline={b}" : ""), ct);

    static string F(FormattableString s) => FormattableString.Invariant(s);

    static async Task<int> PrintUrl(HttpClient http, string url, CancellationToken ct)
    {
        using var response = await http.GetAsync(url, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
        var c = JsonNode.Parse(body)!;
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

    /// <summary>Each candidate variant against the baseline's, paired by seed.</summary>
    static void PrintVariants(JsonNode c)
    {
        Console.WriteLine($"baseline variant: {Variant(c["baselineVariant"]!)}");
        if (c["variants"]!.AsArray().Count == 0) Console.WriteLine("(every run is a seed of the baseline's configuration: no other variant to pair with)");
        foreach (var vc in c["variants"]!.AsArray())
        {
            Console.WriteLine($"\ncandidate variant: {Variant(vc!["variant"]!)}");
            Console.WriteLine($"  {"loss (paired by seed)",-32} {"baseline",-19} {"candidate",-19} {"delta [95% interval]",-27} verdict");
            foreach (var curve in vc["curves"]!.AsArray())
            {
                var d = curve!["delta"]!;
                Console.WriteLine($"  {curve["metric"],-32} {MeanStd(curve["baseline"]!, "F4"),-19} {MeanStd(curve["candidate"]!, "F4"),-19} {Interval(d, "+0.0000;-0.0000"),-27} {Verdict(d)}");
            }
            foreach (var curve in vc["curves"]!.AsArray().Where(x => x!["speedup"] is JsonObject))
            {
                var s = curve!["speedup"]!;
                var text = s["interval"] is JsonObject i ? $"{Interval(i, "0.00")}x  {Verdict(i)}" : s["summary"]!.ToString();
                Console.WriteLine($"  speedup on {curve["metric"]}: {text}");
            }
            var downstream = vc["downstream"]!.AsArray();
            if (downstream.Count > 0)
            {
                Console.WriteLine($"  {"downstream (paired by seed)",-32} {"baseline",-19} {"candidate",-19} {"delta [95% interval]",-27} verdict");
                foreach (var t in downstream.OrderBy(t => t!["name"]!.ToString() == "average acc" ? 1 : 0))
                    Console.WriteLine($"  {t!["name"],-32} {MeanStd(t["baseline"]!, "F1", 100) + "%",-19} {MeanStd(t["candidate"]!, "F1", 100) + "%",-19} {Interval(t["delta"]!, "+0.0;-0.0", 100) + "pt",-27} {Verdict(t["delta"]!, t["noise"]!.GetValue<bool>())}");
            }
            if (vc["confounded"]!.GetValue<bool>())
                foreach (var d in vc["confounds"]!.AsArray())
                    Console.WriteLine($"  CONFOUNDED: {d!["field"]} is {d["baseline"]} in the baseline, {d["candidate"]} in the candidate");
            Console.WriteLine($"  verdict: {vc["verdict"]}");
        }
    }

    /// <summary>Each candidate run against the baseline run.</summary>
    static void PrintRuns(JsonNode c)
    {
        var b0 = c["baseline"]!;
        Console.WriteLine($"\nby run: baseline run {b0["id"]} {b0["name"]} ({b0["connection"]}, {b0["status"]})");
        foreach (var cand in c["candidates"]!.AsArray())
        {
            var run = cand!["run"]!;
            Console.WriteLine($"\ncandidate: run {run["id"]} {run["name"]} ({run["connection"]} x{run["rate"]}, {run["status"]})");
            Console.WriteLine($"  {"loss",-32} {"baseline",9} {"candidate",9} {"delta",8}  {"speedup",8}");
            foreach (var curve in cand["validation"]!.AsArray().Append(cand["training"]).OfType<JsonNode>())
            {
                var s = curve["speedup"]!;
                var speedup = s["speedup"]?.GetValue<double>() is { } x ? (s["isLowerBound"]!.GetValue<bool>() ? ">=" : "") + x.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "never";
                Console.WriteLine(F($"  {curve["metric"],-32} {curve["baselineFinal"]!.GetValue<double>(),9:F4} {curve["candidateFinal"]!.GetValue<double>(),9:F4} {curve["deltaAtLastCommon"]?.GetValue<double>() ?? double.NaN,8:+0.0000;-0.0000}  {speedup,8}"));
            }
            var tasks = cand["tasks"]!.AsArray();
            if (tasks.Count == 0) { Console.WriteLine("  downstream: no evaluation results for both runs"); continue; }
            Console.WriteLine($"  {"downstream",-32} {"baseline",14} {"candidate",14} {"delta",14}");
            string Pct(JsonNode t, string value, string stderr, string format) => (100 * t[value]!.GetValue<double>()).ToString(format, CultureInfo.InvariantCulture)
                + (t[stderr]?.GetValue<double>() is { } se ? " +/- " + (100 * se).ToString("F1", CultureInfo.InvariantCulture) : "");
            foreach (var t in tasks)
                Console.WriteLine($"  {$"{t!["task"]} {t["metric"]}",-32} {Pct(t, "baseline", "baselineStderr", "F1"),14} {Pct(t, "candidate", "candidateStderr", "F1"),14} {Pct(t, "delta", "deltaStderr", "+0.0;-0.0"),14}{(t["noise"]!.GetValue<bool>() ? "  (noise: within 2 SE)" : "")}");
        }
    }
}
