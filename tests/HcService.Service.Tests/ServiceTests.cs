using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace HcService.Service.Tests;

/// <summary>The service end to end: real PostgreSQL, real Hangfire, a real worker process and training child processes.</summary>
[Collection("service")]
public class ServiceTests(ServiceFixture svc)
{
    const string Quick = """
        { "name": "quick", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 20480, "evalTokens": "2K", "evalInterval": 10240, "checkpointInterval": 10240 }, "tags": ["test"] }
        """;
    const string Long = """
        { "name": "long", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
          "training": { "tokenBudget": "5M", "evalTokens": "2K", "checkpointInterval": "5M" } }
        """;

    Task<(HttpStatusCode Status, JsonNode? Body)> Submit(string spec, string? key = null) => svc.Submit(spec, key);
    Task<long> SubmitOk(string spec) => svc.SubmitOk(spec);
    Task<JsonNode> Run(long id) => svc.Run(id);
    Task<(string Status, TimeSpan After)> WaitFor(long id, string[] states, TimeSpan timeout) => svc.WaitFor(id, states, timeout);
    static readonly string[] Ended = RunClient.Ended;
    Task WaitForStep(long id, long step) => svc.WaitForStep(id, step);
    static Task<long> ChildPid(long runId) => RunClient.ChildPid(runId);

    [Fact]
    public async Task SubmittedRunSucceedsAndItsMetricsCheckpointsAndValidationAreServed()
    {
        var id = await SubmitOk(Quick);
        var (status, _) = await WaitFor(id, Ended, TimeSpan.FromMinutes(3));
        Assert.Equal("succeeded", status);

        var detail = await Run(id);
        Assert.Equal(20, detail["run"]!["step"]!.GetValue<long>());
        Assert.Equal(20480, detail["run"]!["tokens"]!.GetValue<long>());
        Assert.Equal(1, detail["run"]!["attempt"]!.GetValue<int>());
        Assert.Equal("dynamic-hc", detail["spec"]!["connection"]!["type"]!.GetValue<string>());
        Assert.True(detail["latestMetrics"]!["train/loss"]!["value"]!.GetValue<double>() < 5.5);

        var series = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/metrics?names=train/loss,val/valid-austen-bytes/loss"))!;
        var loss = series.Single(s => s!["name"]!.GetValue<string>() == "train/loss")!["points"]!.AsArray();
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), loss.Select(p => p!["step"]!.GetValue<long>()));
        var val = series.Single(s => s!["name"]!.GetValue<string>() == "val/valid-austen-bytes/loss")!["points"]!.AsArray();
        Assert.Equal([0L, 10L, 20L], val.Select(p => p!["step"]!.GetValue<long>()));
        Assert.True(val[^1]!["value"]!.GetValue<double>() < val[0]!["value"]!.GetValue<double>());

        var downsampled = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/metrics?names=train/loss&maxPoints=5"))!;
        Assert.Equal(5, downsampled[0]!["points"]!.AsArray().Count);

        var checkpoints = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/checkpoints"))!;
        Assert.Equal([10L, 20L], checkpoints.Select(c => c!["step"]!.GetValue<long>()));
        var last = checkpoints[^1]!;
        var bytes = await svc.Http.GetByteArrayAsync(last["downloadUrl"]!.GetValue<string>().TrimStart('/'));
        Assert.Equal(last["bytes"]!.GetValue<long>(), bytes.Length);
        Assert.Equal(last["sha256"]!.GetValue<string>(), Convert.ToHexStringLower(SHA256.HashData(bytes)));

        var list = (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?tag=test&status=succeeded"))!;
        Assert.Contains(list["items"]!.AsArray(), r => r!["id"]!.GetValue<long>() == id);

        // An idle worker picks a queued run up within 2 s (Hangfire polls the queue every 500 ms).
        var second = await SubmitOk(Quick);
        await WaitFor(second, ["running", "succeeded"], TimeSpan.FromSeconds(30));
        var run = (await Run(second))["run"]!;
        var dispatch = run["startedAt"]!.GetValue<DateTimeOffset>() - run["createdAt"]!.GetValue<DateTimeOffset>();
        Assert.True(dispatch < TimeSpan.FromSeconds(2), $"dispatch took {dispatch}");
        Assert.Equal("succeeded", (await WaitFor(second, Ended, TimeSpan.FromMinutes(3))).Status);
    }

    public static TheoryData<string, string> InvalidSpecs() => new()
    {
        { Quick.Replace("\"tiny\"", "\"olmo-3b\""), "model.preset" },
        { Quick.Replace("\"preset\": \"tiny\"", "\"presett\": \"tiny\""), "model.presett" },
        { Quick.Replace("\"dense\"", "\"sparse\""), "architecture" },
        { Quick.Replace("\"dynamic-hc\"", "\"hyper\""), "connection.type" },
        { Quick.Replace("\"rate\": 2", "\"rate\": 0"), "connection.rate" },
        { Quick.Replace("\"rate\": 2", "\"rate\": -3"), "connection.rate" },
        { Quick.Replace("\"rate\": 2", "\"rate\": \"four\""), "connection.rate" },
        { Quick.Replace("\"tokenBudget\": 20480", "\"tokenBudget\": 100"), "training.tokenBudget" },
        { Quick.Replace("\"tokenBudget\": 20480", "\"tokenBudget\": \"lots\""), "training.tokenBudget" },
        { Quick.Replace("\"tokenBudget\": 20480,", ""), "training.tokenBudget" },
        { Quick.Replace("\"training\": {", "\"training\": { \"lr\": 2,"), "training.lr" },
        { Quick.Replace("\"training\": {", "\"training\": { \"schedule\": \"step\","), "training.schedule" },
        { Quick.Replace("\"training\": {", "\"training\": { \"precision\": \"bf16\","), "training.precision" },
        { Quick.Replace("\"training\": {", "\"training\": { \"precision\": \"fp8\","), "training.precision" },
        { Quick.Replace("\"training\": {", "\"training\": { \"microBatch\": 0,"), "training.microBatch" },
        { Quick.Replace("\"training\": {", "\"training\": { \"batchTokens\": 1000,"), "training.batchTokens" },
        { Quick.Replace("\"training\": {", "\"training\": { \"gradClip\": -1,"), "training.gradClip" },
        { Quick.Replace("\"training\": {", "\"training\": { \"checkpointsToKeep\": 0,"), "training.checkpointsToKeep" },
        { Quick.Replace("\"training\": {", "\"training\": { \"minLrRatio\": 1.5,"), "training.minLrRatio" },
        { Quick.Replace("\"preset\": \"tiny\"", "\"preset\": \"tiny\", \"overrides\": { \"maxSeqLen\": 100000 }"), "model.overrides.maxSeqLen" },
        { Quick.Replace("\"preset\": \"tiny\"", "\"preset\": \"tiny\", \"overrides\": { \"heads\": 5 }"), "model.heads" },
        { Quick.Replace("\"dense\"", "\"moe\"").Replace("\"tags\"", "\"moe\": { \"experts\": 2, \"topK\": 3 }, \"tags\""), "moe.topK" },
        { Quick.Replace("\"tags\"", "\"data\": { \"train\": \"../../etc\" }, \"tags\""), "data.train" },
        { Quick.Replace("\"tags\"", "\"data\": { \"train\": \"no-such-set\" }, \"tags\""), "data.train" },
        { Quick.Replace("\"tags\"", "\"data\": { \"validation\": [\"valid-austen-bytes\", \"nope\"] }, \"tags\""), "data.validation[1]" },
        { Quick.Replace("\"tags\": [\"test\"]", "\"tags\": [\"\"]"), "tags" },
    };

    [Theory]
    [MemberData(nameof(InvalidSpecs))]
    public async Task InvalidSpecGets400NamingTheFieldAndInsertsNothing(string spec, string field)
    {
        var before = (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=1"))!["total"]!.GetValue<int>();
        var (status, body) = await Submit(spec);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var errors = body!["errors"]!.AsObject();
        Assert.True(errors.ContainsKey(field), $"expected an error for {field}, got {body}");
        Assert.Contains(field, errors[field]![0]!.GetValue<string>());
        Assert.Contains("must be", errors[field]![0]!.GetValue<string>());
        var after = (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=1"))!["total"]!.GetValue<int>();
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task MalformedJsonGets400AndAnUnknownRunGets404()
    {
        var (status, body) = await Submit("{ \"model\": ");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("invalid JSON", body!.ToJsonString());
        foreach (var url in new[] { "api/runs/999999", "api/runs/999999/metrics", "api/runs/999999/checkpoints", "api/runs/999999/evaluations" })
        {
            using var r = await svc.Http.GetAsync(url);
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        }
        using var cancel = await svc.Http.PostAsync("api/runs/999999/cancel", null);
        Assert.Equal(HttpStatusCode.NotFound, cancel.StatusCode);
    }

    [Fact]
    public async Task ErrorsNameTheLineAndColumnTheAcceptedTokenCountsAndTheQueryParameter()
    {
        // A spec file cut off inside "connection": where, 1-based, and what is wrong in words.
        var (status, body) = await Submit("{\n  \"model\": { \"preset\": \"tiny\" }, \"architecture\": \"dense\",\n  \"connection\": { \"type\": \"residual\"");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("The job spec is invalid", body!["title"]!.GetValue<string>());
        Assert.Equal("connection = '(invalid JSON at line 3, column 37)': must be well-formed JSON: the text ends before every object and array in it is closed (a truncated file?)",
            body["errors"]!["connection"]![0]!.GetValue<string>());

        // A token count that is none says which forms are.
        (status, body) = await Submit(Quick.Replace("\"tokenBudget\": 20480", "\"tokenBudget\": \"200Q\""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("training.tokenBudget = '200Q': must be a token count: a non-negative integer such as 200000, or a string like \"200K\", \"1.5M\" or \"2B\" "
            + "(digits, an optional decimal fraction, an optional suffix K = 1e3, M = 1e6, B = 1e9 or T = 1e12; a whole number of tokens)",
            body!["errors"]!["training.tokenBudget"]![0]!.GetValue<string>());

        // A body bound to a request type names the path, the line and the column too.
        using (var group = await svc.Http.PostAsync("api/groups", new StringContent("{ \"name\": \"g\",\n  \"seeds\": \"x\" }", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, group.StatusCode);
            Assert.Equal("the JSON body does not match the expected shape at $.seeds (line 2, column 15): must be a list",
                (await group.Content.ReadFromJsonAsync<JsonNode>())!["detail"]!.GetValue<string>());
        }

        // A query parameter's value is the query's error, not the spec's: titled so, naming the parameter, the value and what is allowed.
        foreach (var (url, parameter, message) in new[]
                 {
                     ("api/runs?status=bogus", "status", "status = 'bogus': must be one of queued, running, cancelling, succeeded, failed, cancelled"),
                     ("api/runs?pageSize=0", "pageSize", "pageSize = 0: must be an integer in [1, 500]"),
                     ("api/runs/1/metrics?maxPoints=2", "maxPoints", "maxPoints = 2: must be an integer in [3, 100000]"),
                 })
        {
            using var r = await svc.Http.GetAsync(url);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            var problem = (await r.Content.ReadFromJsonAsync<JsonNode>())!;
            Assert.Equal("The query is invalid", problem["title"]!.GetValue<string>());
            Assert.Equal(message, problem["errors"]![parameter]![0]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task CancellingQueuedAndRunningRunsEndsThemCancelledAndTheWorkerTakesTheNextJob()
    {
        var running = await SubmitOk(Long);
        await WaitFor(running, ["running"], TimeSpan.FromMinutes(2));
        var queued = await SubmitOk(Quick);
        Assert.Equal("queued", (await Run(queued))["run"]!["status"]!.GetValue<string>());

        using (var r = await svc.Http.PostAsync($"api/runs/{queued}/cancel", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("cancelled", (await Run(queued))["run"]!["status"]!.GetValue<string>());   // at once

        await WaitForStep(running, 3);   // let it train a few steps: a cancel then checkpoints them
        using (var r = await svc.Http.PostAsync($"api/runs/{running}/cancel", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var (status, after) = await WaitFor(running, Ended, TimeSpan.FromSeconds(30));
        Assert.Equal("cancelled", status);
        Assert.True(after < TimeSpan.FromSeconds(10), $"cancel took {after}");
        var checkpoints = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{running}/checkpoints"))!;
        Assert.NotEmpty(checkpoints);                                  // the final checkpoint
        var cancelledAt = checkpoints[^1]!["step"]!.GetValue<long>();
        Assert.Equal(cancelledAt, (await Run(running))["run"]!["step"]!.GetValue<long>());

        // Retry: attempt 2 resumes from that checkpoint, not from step 0.
        using (var r = await svc.Http.PostAsync($"api/runs/{running}/retry", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await WaitForStep(running, cancelledAt + 2);
        Assert.Equal(2, (await Run(running))["run"]!["attempt"]!.GetValue<int>());
        Assert.Contains($"[run {running}] resumed from ckpt-{cancelledAt:D9}.hcckpt: step {cancelledAt}", svc.WorkerLog);
        using (var r = await svc.Http.PostAsync($"api/runs/{running}/cancel", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("cancelled", (await WaitFor(running, Ended, TimeSpan.FromSeconds(30))).Status);

        // Cancel is idempotent on a cancelled run; a finished run cannot be cancelled.
        using (var r = await svc.Http.PostAsync($"api/runs/{running}/cancel", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("cancelled", (await Run(running))["run"]!["status"]!.GetValue<string>());

        var next = await SubmitOk(Quick);
        Assert.Equal("succeeded", (await WaitFor(next, Ended, TimeSpan.FromMinutes(3))).Status);
        using (var r = await svc.Http.PostAsync($"api/runs/{next}/cancel", null)) Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);

        // Retry resumes a cancelled run from its latest checkpoint (attempt 2) and a finished run cannot be retried.
        using (var r = await svc.Http.PostAsync($"api/runs/{queued}/retry", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        // hc watch of a retried run follows it to its new end: the "cancelled" in its history is not the end of the stream.
        var watched = await HcProcess.RunAsync("watch", queued.ToString(), "--server", svc.Url);
        Assert.True(watched.ExitCode == 0, watched.Output);
        Assert.Contains($"run {queued}: succeeded at step 20/20", watched.Output);
        Assert.Equal("succeeded", (await WaitFor(queued, Ended, TimeSpan.FromMinutes(3))).Status);
        using (var r = await svc.Http.PostAsync($"api/runs/{next}/retry", null)) Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);

        // The event log holds every transition of both runs, in order, with its attempt and (where it says more) reason.
        var history = (await SseReader.Read(svc.Http, $"api/runs/{running}/events?names=train/loss")).ToList();
        var statuses = history.Where(e => e.Kind == "status").ToList();
        Assert.Equal(["queued", "running", "cancelling", "cancelled", "queued", "running", "cancelling", "cancelled"], statuses.Select(e => e.Status));
        Assert.Equal([0, 1, 1, 1, 1, 2, 2, 2], statuses.Select(e => e.Data["attempt"]!.GetValue<int>()));
        Assert.Equal("retried", statuses[4].Data["reason"]!.GetValue<string>());
        Assert.StartsWith("cancel requested", statuses[2].Data["reason"]!.GetValue<string>());
        Assert.Equal((await svc.Series(running, "train/loss")).Select(p => p.Step), history.Where(e => e.Kind == "metric").Select(e => e.Point.Step));
        var queuedHistory = (await SseReader.Read(svc.Http, $"api/runs/{queued}/events")).Where(e => e.Kind == "status").ToList();
        Assert.Equal(["queued", "cancelled", "queued", "running", "succeeded"], queuedHistory.Select(e => e.Status));
        Assert.Equal("cancelled before it started", queuedHistory[1].Data["reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task KillingTheTrainingProcessFailsTheRunWithAReasonAndTheNextRunSucceeds()
    {
        var victim = await SubmitOk(Long);
        await WaitFor(victim, ["running"], TimeSpan.FromMinutes(2));
        var pid = await ChildPid(victim);
        Process.Start("kill", ["-9", pid.ToString()])!.WaitForExit();

        Assert.Equal("failed", (await WaitFor(victim, Ended, TimeSpan.FromSeconds(30))).Status);
        var reason = (await Run(victim))["run"]!["failureReason"]!.GetValue<string>();
        Assert.Contains("exited with code 137", reason);
        Assert.Contains("SIGKILL", reason);
        Assert.True(svc.WorkerAlive, "the worker died with its child");

        var next = await SubmitOk(Quick);
        Assert.Equal("succeeded", (await WaitFor(next, Ended, TimeSpan.FromMinutes(3))).Status);
    }

    [Fact]
    public async Task ATrainingProcessThatDiesWhileStoppingForACancelEndsTheRunCancelled()
    {
        var victim = await SubmitOk(Long);
        await WaitFor(victim, ["running"], TimeSpan.FromMinutes(2));
        await WaitForStep(victim, 2);
        var pid = await ChildPid(victim);
        using (var cancel = await svc.Http.PostAsync($"api/runs/{victim}/cancel", null)) Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Process.Start("kill", ["-9", pid.ToString()])!.WaitForExit();   // before its watcher (1 s) sees the cancel

        Assert.Equal("cancelled", (await WaitFor(victim, Ended, TimeSpan.FromSeconds(30))).Status);
        var run = await Run(victim);
        Assert.Contains("exited with code 137", run["run"]!["failureReason"]!.GetValue<string>());
        Assert.Equal("cancelled", run["attempts"]!.AsArray().Last()!["outcome"]!.GetValue<string>());
    }

    [Fact]
    public async Task SubmitWaitExitsZeroOnlyForASucceedingRun()
    {
        var dir = RepoPaths.TempDir("submit");
        var good = Path.Combine(dir, "good.json");
        var bad = Path.Combine(dir, "bad.json");
        await File.WriteAllTextAsync(good, Quick);
        // Passes validation, then fails inside the training process: a downstream task file in no task format.
        await File.WriteAllTextAsync(bad, Quick.Replace("\"tags\"", "\"evaluation\": { \"tasks\": [{ \"name\": \"broken\", \"file\": \"eval/broken-task.jsonl\" }] }, \"tags\""));

        var ok = await HcProcess.RunAsync("submit", good, "--wait", "--server", svc.Url, "--api-key", svc.AdminKey);
        Assert.True(ok.ExitCode == 0, ok.Output);
        Assert.Contains("succeeded", ok.Output);

        var failed = await HcProcess.RunAsync("submit", bad, "--wait", "--server", svc.Url, "--api-key", svc.AdminKey);
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("failed", failed.Output);
        Assert.Contains("not a recognised task format", failed.Output);      // the reason, from the child's stderr

        var invalid = await HcProcess.RunAsync("submit", Path.Combine(dir, "missing.json"), "--server", svc.Url, "--api-key", svc.AdminKey);
        Assert.Equal(2, invalid.ExitCode);
    }

    [Fact]
    public async Task ConcurrentSubmissionsWithOneIdempotencyKeyCreateOneRun()
    {
        var key = $"ci-{Guid.NewGuid():N}";
        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Submit(Quick, key)));
        Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.Created or HttpStatusCode.OK, r.Status.ToString()));
        Assert.Single(results, r => r.Status == HttpStatusCode.Created);
        var ids = results.Select(r => r.Body!["id"]!.GetValue<long>()).Distinct().ToList();
        Assert.Single(ids);
        var other = await Submit(Quick, key + "-other");
        Assert.Equal(HttpStatusCode.Created, other.Status);
        Assert.NotEqual(ids[0], other.Body!["id"]!.GetValue<long>());
        foreach (var id in new[] { ids[0], other.Body!["id"]!.GetValue<long>() })
            Assert.Equal("succeeded", (await WaitFor(id, Ended, TimeSpan.FromMinutes(3))).Status);
    }

    [Fact]
    public async Task EventsStreamStatusChangesAndMetricPointsUntilTheRunEnds()
    {
        var id = await SubmitOk(Quick);
        using var response = await svc.Http.GetAsync($"api/runs/{id}/events?names=train/loss,val/", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var statuses = new List<string>();
        var lossSteps = new SortedSet<long>();
        var otherNames = new HashSet<string>();
        string? kind = null;
        while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(3)) is { } line)
        {
            if (line.StartsWith("event: ")) kind = line[7..];
            else if (line.StartsWith("data: "))
            {
                var data = JsonNode.Parse(line[6..])!;
                if (kind == "status") statuses.Add(data["status"]!.GetValue<string>());
                else if (data["name"]!.GetValue<string>() == "train/loss") lossSteps.Add(data["step"]!.GetValue<long>());
                else otherNames.Add(data["name"]!.GetValue<string>());
            }
        }
        Assert.Equal("succeeded", statuses[^1]);
        Assert.Contains("running", statuses);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), lossSteps);                    // every step, once
        Assert.All(otherNames, n => Assert.StartsWith("val/", n));                               // the filter held
        Assert.Contains("val/valid-wikitext-bytes/perplexity", otherNames);

        var watch = await HcProcess.RunAsync("watch", id.ToString(), "--server", svc.Url);                       // a finished run: its end
        Assert.Equal(0, watch.ExitCode);
        Assert.Contains($"run {id}: succeeded at step 20/20", watch.Output);
    }

    [Fact]
    public async Task OpenApiDocumentListsEveryRouteOfTheContract()
    {
        var doc = (await svc.Http.GetFromJsonAsync<JsonNode>("swagger/v1/swagger.json"))!;
        var paths = doc["paths"]!.AsObject().Select(p => p.Key).ToHashSet();
        foreach (var route in new[]
                 {
                     "/api/runs", "/api/runs/{id}", "/api/runs/{id}/cancel", "/api/runs/{id}/retry", "/api/runs/{id}/metrics",
                     "/api/runs/{id}/checkpoints", "/api/runs/{id}/checkpoints/{step}", "/api/runs/{id}/evaluations", "/api/runs/{id}/events",
                     "/api/presets", "/api/datasets",
                 })
            Assert.Contains(route, paths);
        var example = doc["paths"]!["/api/runs"]!["post"]!["requestBody"]!["content"]!["application/json"]!["example"]!;
        Assert.Equal("dynamic-hc", example["connection"]!["type"]!.GetValue<string>());
        Assert.NotNull(doc["paths"]!["/api/runs"]!["post"]!["responses"]!["400"]);
        Assert.NotNull(doc["paths"]!["/api/runs/{id}"]!["get"]!["responses"]!["404"]);
        using var ui = await svc.Http.GetAsync("swagger/index.html");
        Assert.Equal(HttpStatusCode.OK, ui.StatusCode);
        using var dashboard = await svc.Http.GetAsync("hangfire");
        Assert.Equal(HttpStatusCode.OK, dashboard.StatusCode);
        using var ready = await svc.Http.GetAsync("readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }
}
