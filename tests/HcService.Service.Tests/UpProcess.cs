using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace HcService.Service.Tests;

/// <summary>One `hc up` on a home, as a user starts it, with a client of its API (server and key from its export lines).</summary>
sealed class UpProcess : IAsyncDisposable
{
    public static readonly TimeSpan Start = TimeSpan.FromMinutes(2), RunTime = TimeSpan.FromMinutes(4);

    /// <summary>200 steps with a checkpoint every 25: an interruption between two checkpoints shows whether the stop
    /// checkpointed its current step.</summary>
    public const string Long = """
        { "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 204800, "evalTokens": "2K", "evalInterval": 102400, "checkpointInterval": 25600 } }
        """;
    public const string Quick = """
        { "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
          "training": { "tokenBudget": 20480, "evalTokens": "2K", "evalInterval": 10240, "checkpointInterval": 10240 } }
        """;

    public required HcLiveProcess Process { get; init; }
    public required HttpClient Http { get; init; }
    public required string Key { get; init; }
    public required string Database { get; init; }

    public static async Task<UpProcess> StartAsync(string home)
    {
        var process = HcLiveProcess.Start("up", "--home", home, "--port", "0", "--data-root", RepoPaths.DataRoot);
        var server = (await process.WaitForLine(@"^export HC_SERVER=(\S+)$", Start)).Groups[1].Value;
        var key = (await process.WaitForLine(@"^export HC_API_KEY=(\S+)$", Start)).Groups[1].Value;
        var database = (await process.WaitForLine(@"^PostgreSQL: (\S+)$", Start)).Groups[1].Value;
        await process.WaitForLine("^serving", Start);
        var http = new HttpClient { BaseAddress = new Uri(server + "/"), Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", key);
        return new UpProcess { Process = process, Http = http, Key = key, Database = database };
    }

    public async Task<long> Submit(string spec, string name)
    {
        using var response = await Http.PostAsync("api/runs", new StringContent(spec.Replace("NAME", name), Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonNode>())!["id"]!.GetValue<long>();
    }

    public async Task<JsonNode> Run(long id) => (await Http.GetFromJsonAsync<JsonNode>($"api/runs/{id}"))!;

    public async Task<string> WaitForEnd(long id)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var status = (await Run(id))["run"]!["status"]!.GetValue<string>();
            if (RunClient.Ended.Contains(status)) return status;
            Assert.True(sw.Elapsed < RunTime, $"run {id} still {status}; hc up output:\n{Process.Output}");
            await Task.Delay(250);
        }
    }

    /// <summary>Waits until the run has recorded at least <paramref name="step"/> steps; the step it shows then.</summary>
    public async Task<long> WaitForStep(long id, long step)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var run = (await Run(id))["run"]!;
            var now = run["step"]!.GetValue<long>();
            if (now >= step) return now;
            Assert.True(sw.Elapsed < RunTime && run["status"]!.GetValue<string>() is "queued" or "running", $"run {id} at step {now}: {run}; output:\n{Process.Output}");
            await Task.Delay(100);
        }
    }

    public async Task<List<long>> LossSteps(long id)
    {
        var series = (await Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/metrics?names=train/loss&maxPoints=100000"))!;
        return series.Count == 0 ? [] : series[0]!["points"]!.AsArray().Select(p => p!["step"]!.GetValue<long>()).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Process.DisposeAsync();
    }
}
