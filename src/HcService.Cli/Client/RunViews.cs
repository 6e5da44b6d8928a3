using System.Globalization;
using System.Text.Json.Nodes;
using HcService.Cli.Terminal;
using HcService.Contract.Metrics;

namespace HcService.Cli.Client;

/// <summary>The human forms of `hc runs` (a table) and `hc show` (a summary) from the API's JSON.</summary>
static class RunViews
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    static DateTimeOffset? Time(JsonNode? n) => n is null ? null : DateTimeOffset.Parse(n.GetValue<string>(), Ci);

    /// <summary>"dynamic-hc x4", "frac m2", "residual".</summary>
    public static string Connection(JsonNode run) =>
        run["connection"]!.GetValue<string>() + (run["rate"]?.GetValue<int>() is > 1 and var rate ? (run["connection"]!.GetValue<string>() == "frac" ? " m" : " x") + rate : "");

    /// <summary>Wall time of a run so far (running) or in all (ended); "-" before it started.</summary>
    public static TimeSpan? Duration(JsonNode run, DateTimeOffset now) =>
        Time(run["startedAt"]) is { } started ? (Time(run["finishedAt"]) ?? now) - started : null;

    static string Eta(JsonNode run) => run["etaSeconds"]?.GetValue<double>() is { } s ? Human.Duration(TimeSpan.FromSeconds(s)) : "-";

    static double? Value(JsonNode? point) => point?["value"] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    /// <summary>`hc runs`: one row per run of GET /api/runs, with its latest losses.</summary>
    public static void RunsTable(JsonNode page, DateTimeOffset now)
    {
        var latest = page["latest"]?.AsArray().ToDictionary(l => l!["runId"]!.GetValue<long>(), l => l!) ?? [];
        var table = Output.Table(">id", "status", "name", "connection", "preset", ">progress", ">ETA", ">train loss", ">val loss", ">tokens", ">duration", "created", "tags");
        var sets = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var run in page["items"]!.AsArray())
        {
            var id = run!["id"]!.GetValue<long>();
            var l = latest.GetValueOrDefault(id);
            var val = l?["validationLoss"]?.AsObject().OrderBy(p => p.Key, StringComparer.Ordinal).FirstOrDefault();
            if (val?.Key is { } key) sets.Add(key);
            table.Row(id.ToString(Ci), run["status"]!.GetValue<string>(), run["name"]!.GetValue<string>(), Connection(run), run["preset"]?.GetValue<string>(),
                Human.Percent(run["progress"]!.GetValue<double>() / 100), Eta(run), Human.Loss(Value(l?["trainLoss"])), Human.Loss(Value(val?.Value)),
                $"{Human.Tokens(run["tokens"]!.GetValue<long>())}/{Human.Tokens(run["tokenBudget"]!.GetValue<long>())}",
                Human.Duration(Duration(run, now)), Human.Ago(Time(run["createdAt"]), now),
                string.Join(",", run["tags"]!.AsArray().Select(t => t!.GetValue<string>())));
        }
        Output.Write(table);
        var total = page["total"]!.GetValue<long>();
        var shown = page["items"]!.AsArray().Count;
        var footer = $"{shown} of {total} runs";
        if (total > shown) footer += $" (page {page["page"]}; --page and --limit show more)";
        if (sets.Count > 0) footer += $"; val loss: {string.Join(", ", sets)}";
        Console.WriteLine(footer);
    }

    /// <summary>`hc show`: the run's status, progress, latest metrics, attempts, failure reason and its URLs.</summary>
    public static void Summary(JsonNode detail, Uri server, DateTimeOffset now)
    {
        var run = detail["run"]!;
        var id = run["id"]!.GetValue<long>();
        var status = run["status"]!.GetValue<string>();
        Console.WriteLine($"run {id} {run["name"]}: {status} (attempt {run["attempt"]} of at most {detail["maxAttempts"]})");
        var seed = run["seed"]?.GetValue<long>() is { } s ? $", seed {s}" : "";
        Console.WriteLine($"  model      {run["preset"]} {run["architecture"]}, {Connection(run)}{seed}");
        var eta = detail["etaSeconds"]?.GetValue<double>() is { } e ? $", ETA {Human.Duration(TimeSpan.FromSeconds(e))}" : "";
        Console.WriteLine(string.Create(Ci, $"  progress   step {run["step"]}/{run["totalSteps"]} ({Human.Percent(run["progress"]!.GetValue<double>() / 100)}), {run["tokens"]!.GetValue<long>():N0} of {run["tokenBudget"]!.GetValue<long>():N0} tokens{eta}"));
        Console.WriteLine($"  created    {Human.Time(Time(run["createdAt"]))} ({Human.Ago(Time(run["createdAt"]), now)})");
        if (Time(run["startedAt"]) is { } started)
            Console.WriteLine($"  started    {Human.Time(started)}; {(Time(run["finishedAt"]) is { } f ? $"finished {Human.Time(f)}, took" : "running for")} {Human.Duration(Duration(run, now))}");
        if (detail["lease"] is JsonObject lease) Console.WriteLine($"  worker     {lease["owner"]} (lease until {Human.Time(Time(lease["expiresAt"]))})");
        if (run["failureReason"]?.GetValue<string>() is { } why) Console.WriteLine($"  reason     {why}");
        var tags = run["tags"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
        if (tags.Count > 0) Console.WriteLine($"  tags       {string.Join(", ", tags)}");

        var latest = detail["latestMetrics"]!.AsObject();
        var shown = latest.Where(p => !p.Key.StartsWith("hc/", StringComparison.Ordinal)).OrderBy(p => p.Key.StartsWith("val/", StringComparison.Ordinal) ? 0 : 1).ThenBy(p => p.Key, StringComparer.Ordinal).ToList();
        if (shown.Count > 0)
        {
            Console.WriteLine("\nlatest metrics");
            var table = Output.Table("metric", ">value", ">step", "unit");
            foreach (var (name, point) in shown)
                table.Row(name, Value(point) is { } v ? v.ToString(Math.Abs(v) >= 1e4 ? "N0" : "G5", Ci) : point!["value"]?.ToString(), point!["step"]?.ToString(),
                    MetricRegistry.Find(name)?.Unit ?? "");
            Output.Write(table);
            if (latest.Count > shown.Count) Console.WriteLine($"(and {latest.Count - shown.Count} connection statistics hc/...: hc show {id} --json)");
        }

        var attempts = detail["attempts"]!.AsArray();
        if (attempts.Count > 0)
        {
            Console.WriteLine("\nattempts");
            var table = Output.Table(">attempt", "worker", "started", "ended", "outcome", "reason");
            foreach (var a in attempts)
                table.Row(a!["attempt"]!.ToString(), a["worker"]?.GetValue<string>(), Human.Time(Time(a["startedAt"])), Human.Time(Time(a["endedAt"])),
                    a["outcome"]?.GetValue<string>() ?? "(running)", a["reason"]?.GetValue<string>());
            Output.Write(table);
        }

        var root = server.ToString().TrimEnd('/');
        Console.WriteLine($"\nweb:     {root}/#/runs/{id}");
        Console.WriteLine($"api:     {root}/api/runs/{id}");
        Console.WriteLine($"metrics: {root}/api/runs/{id}/metrics");
        Console.WriteLine($"follow:  hc watch {id}");
    }
}
