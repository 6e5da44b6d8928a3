using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace HcService.Cli.Service;

/// <summary>`hc submit`, `hc runs`, `hc show`, `hc cancel`, `hc watch`: the API from the command line (CI pipelines use
/// `hc submit --wait`, which exits 0 only when the run succeeded).</summary>
static class ClientCommands
{
    static readonly string[] Terminal = ["succeeded", "failed", "cancelled"];

    public static IEnumerable<Command> Create()
    {
        var server = ServerOption();

        var spec = new Argument<string>("spec") { Description = "Job spec JSON file" };
        var wait = new Option<bool>("--wait") { Description = "Wait for the run to end; exit 0 only if it succeeded" };
        var key = new Option<string?>("--idempotency-key") { Description = "Submitting again with the same key returns the same run" };
        var submit = new Command("submit", "Submit a job spec to the service") { spec, wait, key, server };
        submit.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server));
            var path = r.GetValue(spec)!;
            if (!File.Exists(path)) throw new HcService.Core.Config.ConfigException([new("spec", path, "an existing JSON file")]);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/runs") { Content = new StringContent(await File.ReadAllTextAsync(path, ct), Encoding.UTF8, "application/json") };
            if (r.GetValue(key) is { } k) request.Headers.Add("Idempotency-Key", k);
            using var response = await http.SendAsync(request, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            var run = JsonNode.Parse(body)!;
            var id = run["id"]!.GetValue<long>();
            Console.WriteLine($"run {id} {run["status"]} ({run["name"]}): {http.BaseAddress}api/runs/{id}");
            return r.GetValue(wait) ? await Wait(http, id, ct) : 0;
        });

        var status = new Option<string?>("--status") { Description = "Filter by status" };
        var runs = new Command("runs", "List runs, newest first") { status, server };
        runs.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server));
            var url = "/api/runs" + (r.GetValue(status) is { } s ? $"?status={Uri.EscapeDataString(s)}" : "");
            using var response = await http.GetAsync(url, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            Console.WriteLine($"{"id",6}  {"status",-10} {"name",-28} {"connection",-12} {"rate",4} {"progress",9}  created");
            foreach (var run in JsonNode.Parse(body)!["items"]!.AsArray())
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{run!["id"],6}  {run["status"],-10} {run["name"],-28} {run["connection"],-12} {run["rate"],4} {run["progress"]!.GetValue<double>(),8:F1}%  {run["createdAt"]}"));
            return 0;
        });

        var id = new Argument<long>("id") { Description = "Run id" };
        var show = new Command("show", "Show one run: status, progress, latest metrics, failure reason") { id, server };
        show.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server));
            using var response = await http.GetAsync($"/api/runs/{r.GetValue(id)}", ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            Console.WriteLine(JsonNode.Parse(body)!.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });

        var cancelId = new Argument<long>("id") { Description = "Run id" };
        var cancel = new Command("cancel", "Cancel a run (queued: at once; running: after a final checkpoint)") { cancelId, server };
        cancel.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server));
            using var response = await http.PostAsync($"/api/runs/{r.GetValue(cancelId)}/cancel", null, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return Fail(response, body);
            Console.WriteLine($"run {r.GetValue(cancelId)}: {JsonNode.Parse(body)!["status"]}");
            return 0;
        });

        var watchId = new Argument<long>("id") { Description = "Run id" };
        var watch = new Command("watch", "Follow a run's progress until it ends (exit 0 only if it succeeded)") { watchId, server };
        watch.SetAction(async (r, ct) =>
        {
            using var http = Client(r.GetValue(server));
            return await Wait(http, r.GetValue(watchId), ct);
        });
        return [submit, runs, show, cancel, watch];
    }

    /// <summary>Polls the run every second, printing progress when it changes; 0 only for succeeded.</summary>
    internal static async Task<int> Wait(HttpClient http, long id, CancellationToken ct)
    {
        string? last = null;
        while (true)
        {
            var detail = await http.GetFromJsonAsync<JsonNode>($"/api/runs/{id}", ct);
            var run = detail!["run"]!;
            var state = run["status"]!.GetValue<string>();
            var loss = detail["latestMetrics"]?["train/loss"]?["value"]?.GetValue<double>();
            var line = string.Create(CultureInfo.InvariantCulture,
                $"run {id}: {state}, step {run["step"]}/{run["totalSteps"]} ({run["progress"]}%){(loss is { } l ? $", loss {l:F4}" : "")}");
            if (line != last) Console.WriteLine(line);
            last = line;
            if (Terminal.Contains(state))
            {
                if (run["failureReason"]?.GetValue<string>() is { } why) Console.WriteLine($"run {id}: {why}");
                return state == "succeeded" ? 0 : 1;
            }
            await Task.Delay(1000, ct);
        }
    }

    static int Fail(HttpResponseMessage response, string body)
    {
        Console.Error.WriteLine($"error: {(int)response.StatusCode} {response.ReasonPhrase}");
        try
        {
            var problem = JsonNode.Parse(body);
            if (problem?["errors"] is JsonObject errors)
                foreach (var (_, messages) in errors) foreach (var m in messages!.AsArray()) Console.Error.WriteLine($"error: {m}");
            else if (problem?["detail"] is { } detail) Console.Error.WriteLine($"error: {detail}");
        }
        catch (JsonException) { Console.Error.WriteLine(body); }
        return 2;
    }

    internal static Option<string?> ServerOption() => new("--server") { Description = "Service URL (default: $HC_SERVER, else http://127.0.0.1:5080)" };

    internal static HttpClient Client(string? server) =>
        new() { BaseAddress = new Uri((server ?? Environment.GetEnvironmentVariable("HC_SERVER") ?? "http://127.0.0.1:5080").TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
}
