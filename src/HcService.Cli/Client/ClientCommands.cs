using HcService.Contract.Metrics;
using HcService.Store.Runs;
using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HcService.Cli.Terminal;

namespace HcService.Cli.Client;

/// <summary>`hc submit`, `hc runs`, `hc show`, `hc cancel`, `hc watch`: the API from the command line (CI pipelines use
/// `hc submit --wait`, which exits 0 only when the run succeeded).</summary>
static class ClientCommands
{
    static readonly string[] Terminal = RunStatus.Terminal;

    public static IEnumerable<Command> Create()
    {
        var server = ServerOption();
        var apiKey = ApiKeyOption();

        var spec = new Argument<string>("spec") { Description = "Job spec JSON file" };
        var wait = new Option<bool>("--wait") { Description = "Wait for the run to end; exit 0 only if it succeeded" };
        var key = new Option<string?>("--idempotency-key") { Description = "Submitting again with the same key returns the same run" };
        var submit = new Command("submit", "Submit a job spec to the service") { spec, wait, key, server, apiKey };
        submit.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server), r.GetValue(apiKey));
            var path = r.GetValue(spec)!;
            if (!File.Exists(path)) throw new HcService.Contract.Config.ConfigException([new("spec", path, "an existing JSON file")]);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/runs") { Content = new StringContent(await File.ReadAllTextAsync(path, ct), Encoding.UTF8, "application/json") };
            if (r.GetValue(key) is { } k) request.Headers.Add("Idempotency-Key", k);
            using var response = await http.SendAsync(request, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            var run = JsonNode.Parse(body)!;
            var id = run["id"]!.GetValue<long>();
            Console.WriteLine($"run {id} {run["status"]} ({run["name"]}): {http.BaseAddress}#/runs/{id} (web), {http.BaseAddress}api/runs/{id} (API)");
            return r.GetValue(wait) ? await Wait(http, id, ct) : 0;
        });

        var status = new Option<string?>("--status") { Description = $"Only runs in this status ({string.Join(", ", RunStatus.All)})" };
        var tag = new Option<string?>("--tag") { Description = "Only runs with this tag (a group's runs: group:NAME)" };
        var limit = new Option<int>("--limit") { Description = "Runs per page (1 to 500)", DefaultValueFactory = _ => 20 };
        var page = new Option<int>("--page") { Description = "Page, from 1 (newest first)", DefaultValueFactory = _ => 1 };
        var runsJson = Output.JsonOption();
        var runs = new Command("runs", "List runs, newest first: status, progress, ETA, latest losses, duration") { status, tag, limit, page, runsJson, server, apiKey };
        runs.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server), r.GetValue(apiKey));
            var query = new List<string> { $"pageSize={r.GetValue(limit)}", $"page={r.GetValue(page)}" };
            if (r.GetValue(status) is { } st) query.Add($"status={Uri.EscapeDataString(st)}");
            if (r.GetValue(tag) is { } t) query.Add($"tag={Uri.EscapeDataString(t)}");
            using var response = await http.GetAsync("/api/runs?" + string.Join('&', query), ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            if (r.GetValue(runsJson)) Output.Json(JsonNode.Parse(body));
            else RunViews.RunsTable(JsonNode.Parse(body)!, DateTimeOffset.UtcNow);
            return ExitCodes.Ok;
        });

        var id = new Argument<long>("id") { Description = "Run id" };
        var showJson = Output.JsonOption();
        var show = new Command("show", "Show one run: status, progress, latest metrics, attempts, failure reason, links") { id, showJson, server, apiKey };
        show.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server), r.GetValue(apiKey));
            using var response = await http.GetAsync($"/api/runs/{r.GetValue(id)}", ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            if (r.GetValue(showJson)) Output.Json(JsonNode.Parse(body));
            else RunViews.Summary(JsonNode.Parse(body)!, http.BaseAddress!, DateTimeOffset.UtcNow);
            return ExitCodes.Ok;
        });

        var cancelId = new Argument<long>("id") { Description = "Run id" };
        var cancel = new Command("cancel", "Cancel a run (queued: at once; running: after a final checkpoint)") { cancelId, server, apiKey };
        cancel.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server), r.GetValue(apiKey));
            using var response = await http.PostAsync($"/api/runs/{r.GetValue(cancelId)}/cancel", null, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            Console.WriteLine($"run {r.GetValue(cancelId)}: {JsonNode.Parse(body)!["status"]}");
            return 0;
        });

        var watchId = new Argument<long>("id") { Description = "Run id" };
        var history = new Option<bool>("--history") { Description = "Replay the run's history (every status change and validation) before following it, instead of starting from its current state" };
        var watch = new Command("watch", "Follow a run's progress from its current state until it ends (exit 0 only if it succeeded)") { watchId, history, server, apiKey };
        watch.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server), r.GetValue(apiKey));
            return await Wait(http, r.GetValue(watchId), ct, fromNow: !r.GetValue(history));
        });
        return [submit, runs, show, cancel, watch];
    }

    /// <summary>
    /// Follows the run through its server-sent events (<see cref="RunEventStream"/>, which resumes a dropped stream where
    /// it stopped) on a <see cref="RunProgressView"/>: a live bar on a terminal, plain lines otherwise; status transitions
    /// and validation losses as lines. <paramref name="fromNow"/> (`hc watch`) starts from the run's current state instead
    /// of replaying its history. 0 only for succeeded.
    /// </summary>
    internal static async Task<int> Wait(HttpClient http, long id, CancellationToken ct, bool fromNow = false)
    {
        using var current = await http.GetAsync($"/api/runs/{id}", ct);
        var body = await current.Content.ReadAsStringAsync(ct);
        if (!current.IsSuccessStatusCode) return Fail(current, body);
        var detail = JsonNode.Parse(body)!;
        var summary = detail["run"]!;
        JsonNode? lastStatus = null;
        using var view = new RunProgressView($"run {id} {summary["name"]}", summary["totalSteps"]!.GetValue<long>(), summary["tokenBudget"]!.GetValue<long>());
        if (fromNow)
        {
            // What the run is at now: its step and latest losses, the API's ETA until the view has measured its own.
            var latest = detail["latestMetrics"]!.AsObject();
            view.InitialEta(detail["etaSeconds"]?.GetValue<double>() is { } eta ? TimeSpan.FromSeconds(eta) : null);
            view.Step(summary["step"]!.GetValue<long>(), summary["tokens"]!.GetValue<long>(), latest[MetricRegistry.TrainLoss.Name]?["value"]?.GetValue<double>());
            foreach (var (name, point) in latest)
                if (MetricRegistry.IsValidationLoss(name, out var set)) view.Validation(set, point!["step"]!.GetValue<long>(), point["value"]!.GetValue<double>());
        }
        using var stream = new RunEventStream(http, id, $"{MetricRegistry.TrainLoss.Name},{MetricRegistry.ValidationPrefix}", note => view.Line(note), fromNow);
        try
        {
            while (await stream.NextAsync(ct) is { } e)
            {
                var data = e.Data;
                if (e.Kind == "status")
                {
                    var reason = data["reason"]?.GetValue<string>();
                    var said = data["status"]!.GetValue<string>() switch
                    {
                        // A transition worth its reason: back to the queue (handed back, lost worker, retried), a cancel.
                        RunStatus.Queued when data["previous"] is not null => $": {reason}",
                        RunStatus.Cancelling => $": {reason}",
                        _ => "",
                    };
                    view.Totals(data["totalSteps"]!.GetValue<long>(), summary["tokenBudget"]!.GetValue<long>());
                    view.Line($"run {id}: {data["status"]} (attempt {data["attempt"]}){said}");
                    lastStatus = data;
                }
                else if (e.Kind == "metric")
                {
                    var name = data["name"]!.GetValue<string>();
                    var step = data["step"]!.GetValue<long>();
                    // A diverged run's NaN/Infinity comes as a string ("NaN").
                    var value = data["value"] is JsonValue v && v.TryGetValue<double>(out var d) ? d
                        : double.Parse(data["value"]!.ToString(), CultureInfo.InvariantCulture);
                    if (MetricRegistry.IsValidationLoss(name, out var set)) view.Validation(set, step, value);
                    else if (name == MetricRegistry.TrainLoss.Name) view.Step(step, data["tokens"]!.GetValue<long>(), value);
                }
            }
        }
        catch (StreamRefusedException refused) { view.Dispose(); return Fail(refused.Response, refused.Body); }
        view.Dispose();
        var state = lastStatus?["status"]?.GetValue<string>() ?? "unknown";
        if (lastStatus?["reason"]?.GetValue<string>() is { } why && state != RunStatus.Succeeded) Console.WriteLine($"run {id}: {why}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {id}: {state} at step {lastStatus?["step"]}/{lastStatus?["totalSteps"]}"));
        return state == RunStatus.Succeeded ? ExitCodes.Ok : ExitCodes.RunFailed;
    }

    /// <summary>Prints the service's error answer (every invalid field of a 400, else its detail) and returns the exit code
    /// for it (<see cref="ExitCodes.ForStatus"/>).</summary>
    internal static int Fail(HttpResponseMessage response, string body)
    {
        var status = (int)response.StatusCode;
        var hint = status switch
        {
            401 => " (pass an API key with --api-key or HC_API_KEY; `hc up` prints one)",
            403 => " (the key's scope does not allow this; an admin can create one with `hc keys create --scope submit|admin`)",
            _ => "",
        };
        Console.Error.WriteLine($"error: {status} {response.ReasonPhrase}{hint}");
        try
        {
            var problem = JsonNode.Parse(body);
            if (problem?["errors"] is JsonObject errors)
                foreach (var (_, messages) in errors) foreach (var m in messages!.AsArray()) Console.Error.WriteLine($"error: {m}");
            else if (problem?["detail"] is { } detail) Console.Error.WriteLine($"error: {detail}");
        }
        catch (JsonException) { if (body.Length > 0) Console.Error.WriteLine($"error: {body[..Math.Min(body.Length, 500)]}"); }
        return ExitCodes.ForStatus(response.StatusCode);
    }

    internal static Option<string?> ServerOption() => new("--server") { Description = "Service URL (default: $HC_SERVER, else http://127.0.0.1:5080)" };

    internal static Option<string?> ApiKeyOption() => new("--api-key") { Description = "API key (default: $HC_API_KEY); `hc up` prints the first admin key" };

    /// <summary>An HTTP client for the service, carrying the API key (flag, else $HC_API_KEY) as a bearer token.</summary>
    internal static HttpClient Client(string? server, string? apiKey)
    {
        var http = new HttpClient { BaseAddress = new Uri((server ?? Environment.GetEnvironmentVariable("HC_SERVER") ?? "http://127.0.0.1:5080").TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
        if ((apiKey ?? Environment.GetEnvironmentVariable("HC_API_KEY")) is { Length: > 0 } key)
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return http;
    }
}
