using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace HcService.Service.Tests;

/// <summary>What `hc watch`, `hc runs`, `hc show`, `hc compare` and `hc groups` print for a person, against the fixture's
/// service (numbers checked against the API's own answers).</summary>
[Collection("service")]
public class CliOutputTests(ServiceFixture svc)
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    [Fact]
    public async Task HcWatchOnATerminalStartsFromTheCurrentStateWithALiveBarPercentageAndEta()
    {
        svc.EnsureWorker();
        var id = await svc.SubmitOk("""
            { "name": "watched-live", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": "5M", "evalTokens": "1K", "checkpointInterval": "5M" } }
            """);
        try { await Watch(id); }
        finally { using var _ = await svc.Http.PostAsync($"api/runs/{id}/cancel", null); }   // never leave the worker busy
        await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(1));
    }

    async Task Watch(long id)
    {
        await svc.WaitForStep(id, 30);
        await using var watch = HcLiveProcess.StartInTerminal("watch", id.ToString(Ci), "--server", svc.Url);
        // The first status it prints is the run's current one (running), not the queued state it started from, and the
        // live bar starts at the step the run is at: the run's title, a percentage and an ETA; the details below it.
        var first = await watch.WaitForLine($@"^run {id}: (\w+) \(attempt (\d+)\)", TimeSpan.FromMinutes(1));
        Assert.Equal("running", first.Groups[1].Value);
        var bar = await watch.WaitForLine(@"^run \d+ watched-live .* (\d+)% ETA (\d+s|\d+m\d\ds|\d+h\d\dm)$", TimeSpan.FromMinutes(1));
        Assert.InRange(int.Parse(bar.Groups[1].Value, Ci), 0, 99);
        var details = await watch.WaitForLine(@"^step (\d+)/(\d+) \| .* tokens \| .* tok/s \| loss \d+\.\d{4}", TimeSpan.FromMinutes(1));
        var startStep = long.Parse(details.Groups[1].Value, Ci);
        var total = details.Groups[2].Value;
        Assert.True(startStep >= 30, watch.Output);
        // It follows the run live: a later step arrives.
        await watch.WaitForLine($@"^step ({startStep + 3}|{startStep + 4}|{startStep + 5}|{startStep + 6}|{startStep + 7}|{startStep + 8}|{startStep + 9}|\d{{3,}})/{total} ", TimeSpan.FromMinutes(1));

        using (var r = await svc.Http.PostAsync($"api/runs/{id}/cancel", null)) Assert.True(r.IsSuccessStatusCode);
        Assert.Equal(1, await watch.WaitForExit(TimeSpan.FromMinutes(1)));   // cancelled: ExitCodes.RunFailed
        var statuses = Regex.Matches(watch.Output, $@"(?m)^run {id}: (\w+) \(attempt").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(["running", "cancelling", "cancelled"], statuses);   // no replay of "queued"
        Assert.Contains($"run {id}: cancelled at step", watch.Output);
        Assert.DoesNotContain("Exception", watch.Output);
    }

    [Fact]
    public async Task RunsShowCompareAndGroupsPrintTablesWithTheApisNumbersAndJsonOnRequest()
    {
        svc.EnsureWorker();
        var group = $"cli-output-{Guid.NewGuid():N}"[..24];
        using (var created = await svc.Http.PostAsync("api/groups", new StringContent($$"""
            { "name": "{{group}}",
              "base": { "name": "out-res", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
                        "training": { "tokenBudget": 16384, "evalTokens": "1K", "evalInterval": 8192, "checkpointInterval": 16384 } },
              "variants": [ { "name": "out-dhc", "connection": { "type": "dynamic-hc", "rate": 4 } } ] }
            """, System.Text.Encoding.UTF8, "application/json")))
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var runs = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs?tag=group:{group}"))!;
        var ids = runs["items"]!.AsArray().Select(r => r!["id"]!.GetValue<long>()).Order().ToList();
        foreach (var id in ids) Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(3))).Status);
        runs = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs?tag=group:{group}"))!;

        // hc runs: a row per run with its latest train and validation loss as the API has them, and the table's footer.
        var table = await HcProcess.RunAsync("runs", "--tag", $"group:{group}", "--server", svc.Url);
        Assert.True(table.ExitCode == 0, table.Output);
        foreach (var latest in runs["latest"]!.AsArray())
        {
            var id = latest!["runId"]!.GetValue<long>();
            var train = latest["trainLoss"]!["value"]!.GetValue<double>().ToString("F4", Ci);
            var val = latest["validationLoss"]!["val/valid-austen-bytes/loss"]!["value"]!.GetValue<double>().ToString("F4", Ci);
            Assert.Matches($@"(?m)^\s+{id}\s+succeeded\s+out-\w+\s+.*100\.0%\s+-\s+{Regex.Escape(train)}\s+{Regex.Escape(val)}\s+16\.4k/16\.4k\s", table.Stdout);
        }
        Assert.Contains("2 of 2 runs; val loss: val/valid-austen-bytes/loss", table.Stdout);
        Assert.DoesNotContain("\\u002B", table.Stdout);

        // --json: the API's answer, parseable, without \u escapes.
        var json = await HcProcess.RunAsync("runs", "--tag", $"group:{group}", "--json", "--server", svc.Url);
        Assert.Equal(ids, JsonNode.Parse(json.Stdout)!["items"]!.AsArray().Select(r => r!["id"]!.GetValue<long>()).Order());

        // hc show: status, progress, the latest metrics with units, the attempt and the links; not the JSON.
        var show = await HcProcess.RunAsync("show", ids[1].ToString(Ci), "--server", svc.Url);
        Assert.True(show.ExitCode == 0, show.Output);
        var detail = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs/{ids[1]}"))!;
        Assert.StartsWith($"run {ids[1]} out-dhc: succeeded (attempt 1 of at most", show.Stdout);
        Assert.Contains("progress   step 16/16 (100.0%), 16,384 of 16,384 tokens", show.Stdout);
        Assert.Matches($@"(?m)^\s+train/loss\s+{Regex.Escape(detail["latestMetrics"]!["train/loss"]!["value"]!.GetValue<double>().ToString("G5", Ci))}\s+16\s+nats per token", show.Stdout);
        Assert.Matches(@"(?m)^\s+1\s+\S+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+succeeded", show.Stdout);
        Assert.Contains($"web:     {svc.Url.TrimEnd('/')}/#/runs/{ids[1]}", show.Stdout);
        Assert.DoesNotContain("\"latestMetrics\"", show.Stdout);

        // hc compare by group name: the table's speedup cell is a number or "not reached", the sentences below it.
        var compare = await HcProcess.RunAsync("compare", group, "--server", svc.Url);
        Assert.True(compare.ExitCode == 0, compare.Output);
        Assert.Matches(@"(?m)^\s+train/loss\s+\d\.\d{4}\s+\d\.\d{4}\s+[+-]\d\.\d{4}\s+\S.*\s(\d\.\d\dx|>=\d\.\d\dx|not reached)\s*$", compare.Stdout);
        Assert.Matches(@"(?m)^  train/loss: ", compare.Stdout);
        var one = await HcProcess.RunAsync("compare", ids[0].ToString(Ci), "--server", svc.Url);
        Assert.Equal(2, one.ExitCode);
        Assert.Contains($"give at least two run ids to compare (got one: {ids[0]}), or a group name", one.Output);

        // hc groups show: per variant and per run, with the API's losses.
        var shown = await HcProcess.RunAsync("groups", "show", group, "--server", svc.Url);
        Assert.True(shown.ExitCode == 0, shown.Output);
        var g = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/groups/{group}"))!;
        foreach (var row in g["rows"]!.AsArray())
            Assert.Matches($@"(?m)^\s+{row!["run"]!["id"]}\s+{row["run"]!["name"]}\s+.*{Regex.Escape(row["validationLoss"]!["valid-austen-bytes"]!.GetValue<double>().ToString("F4", Ci))}", shown.Stdout);
        Assert.Contains($"compare: hc compare {group}", shown.Stdout);
    }
}
