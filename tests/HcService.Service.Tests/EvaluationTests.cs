using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Xml.Linq;

namespace HcService.Service.Tests;

/// <summary>Downstream evaluation through the service: in-loop (from the spec), on demand for a stored checkpoint (a job
/// on a worker), results stored per (run, step, task, metric), and the comparison route built from them.</summary>
[Collection("service")]
public class EvaluationTests(ServiceFixture svc)
{
    const string Spec = """
        { "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": CONNECTION,
          "training": { "tokenBudget": 20480, "evalTokens": "2K", "evalInterval": 10240, "checkpointInterval": 10240, "checkpointsToKeep": 5 },
          "evaluation": { "tasks": ["arc_easy", "copa", "winogrande"], "limit": 5, "interval": 10240 } }
        """;

    [Fact]
    public async Task InLoopAndOnDemandEvaluationsAreStoredAndTheComparisonRouteReturnsThem()
    {
        svc.EnsureWorker();
        var baseline = await svc.SubmitOk(Spec.Replace("NAME", "eval-residual").Replace("CONNECTION", """{ "type": "residual" }"""));
        var hc = await svc.SubmitOk(Spec.Replace("NAME", "eval-dhc").Replace("CONNECTION", """{ "type": "dynamic-hc", "rate": 2 }"""));
        Assert.Equal("succeeded", (await svc.WaitFor(baseline, RunClient.Ended, TimeSpan.FromMinutes(3))).Status);
        Assert.Equal("succeeded", (await svc.WaitFor(hc, RunClient.Ended, TimeSpan.FromMinutes(3))).Status);

        // In-loop: every 10,240 tokens (steps 10 and 20), each task's acc (and acc_norm except WinoGrande) and item count.
        var results = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{hc}/evaluations"))!;
        foreach (var step in new[] { 10L, 20L })
        {
            foreach (var task in new[] { "arc_easy", "copa", "winogrande" })
            {
                var acc = Value(results, step, task, "acc");
                Assert.True(acc is >= 0 and <= 1, $"{task} acc at step {step}: {acc}");
                Assert.Equal(5, Value(results, step, task, "items"));
            }
            Assert.NotNull(Value(results, step, "arc_easy", "acc_norm"));
            Assert.Null(Value(results, step, "winogrande", "acc_norm"));   // partial scoring: acc only
        }

        // On demand: another checkpoint, other tasks (a known name and a {name, file} pair), its own limit.
        using (var bad = await svc.Http.PostAsJsonAsync($"api/runs/{hc}/evaluations", new { tasks = new object[] { "nope", new { name = "x", file = "../../etc/passwd" } }, step = 7 }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var text = await bad.Content.ReadAsStringAsync();
            Assert.Contains("tasks[0].name", text);
            Assert.Contains("tasks[1].file", text);
            Assert.Contains("one of the run's checkpoint steps: 10, 20", text);
        }
        using var submitted = await svc.Http.PostAsJsonAsync($"api/runs/{hc}/evaluations",
            new { tasks = new object[] { "piqa", new { name = "arc-foundry", file = "eval/llm-foundry-icl/world_knowledge/arc_easy.jsonl" } }, limit = 4, step = 10 });
        Assert.True(submitted.StatusCode == HttpStatusCode.Accepted, $"{submitted.StatusCode}: {await submitted.Content.ReadAsStringAsync()}\n{svc.ServerErrors}");
        var job = (await submitted.Content.ReadFromJsonAsync<JsonNode>())!;
        var jobUrl = submitted.Headers.Location!.ToString().TrimStart('/');
        var status = "";
        for (var i = 0; i < 600 && status is not ("succeeded" or "failed"); i++)
        {
            await Task.Delay(200);
            status = (await svc.Http.GetFromJsonAsync<JsonNode>(jobUrl))!["status"]!.GetValue<string>();
        }
        Assert.True(status == "succeeded", $"evaluation job {job["id"]}: {status}; worker log:\n{svc.WorkerLog}");
        var atTen = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{hc}/evaluations?step=10"))!;
        Assert.Equal(4, Value(atTen, 10, "piqa", "items"));
        Assert.Equal(4, Value(atTen, 10, "arc-foundry", "items"));
        Assert.NotNull(Value(atTen, 10, "arc_easy", "acc"));   // the in-loop results of that step are still there

        // The evaluation job also analysed the checkpoint's connections (docs/hc-math.md section 8).
        var analysis = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs/{hc}/analysis?step=10"))!;
        Assert.Equal("dhc-x2", analysis["connection"]!.GetValue<string>());
        var matrix = analysis["staticMatrix"]!["values"]!.AsArray();
        Assert.Equal(2 * 2 + 1, matrix.Count);   // tiny: 2 blocks = 4 sublayers, plus the output row
        Assert.Equal(2, analysis["similarity"]!["adjacentCosine"]!.AsArray().Count);
        using (var heatmap = await svc.Http.GetAsync($"api/runs/{hc}/analysis/heatmap.svg?step=10&source=dynamic"))
        {
            Assert.Equal(HttpStatusCode.OK, heatmap.StatusCode);
            Assert.Equal(5 * 5, XDocument.Parse(await heatmap.Content.ReadAsStringAsync()).Descendants().Count(e => e.Name.LocalName == "rect" && (string?)e.Attribute("class") == "cell"));
        }
        using (var none = await svc.Http.GetAsync($"api/runs/{baseline}/analysis")) Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);

        // The comparison: losses aligned by tokens per validation set with a speedup, and the downstream deltas.
        var comparison = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/comparisons?runs={baseline},{hc}"))!;
        Assert.Equal(baseline, comparison["baseline"]!["id"]!.GetValue<long>());
        var candidate = comparison["candidates"]!.AsArray().Single()!;
        var validation = candidate["validation"]!.AsArray();
        Assert.Contains(validation, v => v!["metric"]!.GetValue<string>() == "val/valid-austen-bytes/loss");
        foreach (var v in validation)
        {
            Assert.Equal(20480, v!["lastCommonTokens"]!.GetValue<double>());
            Assert.Equal(v["candidateFinal"]!.GetValue<double>() - v["baselineFinal"]!.GetValue<double>(), v["deltaAtLastCommon"]!.GetValue<double>(), 9);
            Assert.False(string.IsNullOrEmpty(v["speedup"]!["summary"]!.GetValue<string>()));
        }
        var baseResults = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{baseline}/evaluations"))!;
        var arc = candidate["tasks"]!.AsArray().Single(t => t!["task"]!.GetValue<string>() == "arc_easy" && t["metric"]!.GetValue<string>() == "acc")!;
        Assert.Equal(20, arc["candidateStep"]!.GetValue<long>());
        Assert.Equal(Value(results, 20, "arc_easy", "acc")!.Value - Value(baseResults, 20, "arc_easy", "acc")!.Value, arc["delta"]!.GetValue<double>(), 12);

        using var plot = await svc.Http.GetAsync(comparison["plotUrl"]!.GetValue<string>().TrimStart('/'));
        Assert.Equal("image/svg+xml", plot.Content.Headers.ContentType!.MediaType);
        var svg = XDocument.Parse(await plot.Content.ReadAsStringAsync());
        Assert.Equal(2, svg.Descendants().Count(e => e.Name.LocalName == "path" && (string?)e.Attribute("class") == "series"));
    }

    [Fact]
    public async Task AGridSubmittedAsOneGroupGetsOneTableWithDeltasToTheResidualBaseline()
    {
        svc.EnsureWorker();
        var baseSpec = JsonNode.Parse("""
            { "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 10240, "evalTokens": "2K", "evalInterval": 5120 }, "tags": ["grid"] }
            """)!;
        var variant = (string type, int rate) => JsonNode.Parse($$"""{ "connection": { "type": "{{type}}", "rate": {{rate}} } }""")!;
        using (var bad = await svc.Http.PostAsJsonAsync("api/groups", new { name = "grid-bad", @base = baseSpec, variants = new[] { variant("hyper", 4) } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("variants[0].connection.type", await bad.Content.ReadAsStringAsync());
        }
        using (var nullVariant = await svc.Http.PostAsJsonAsync("api/groups", new { name = "grid-null", @base = baseSpec, variants = new object?[] { null } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, nullVariant.StatusCode);
            Assert.Contains("variants[0]", await nullVariant.Content.ReadAsStringAsync());
        }
        var name = $"grid-{Guid.NewGuid():N}"[..20];
        using var created = await svc.Http.PostAsJsonAsync("api/groups", new { name, @base = baseSpec, variants = new[] { variant("dynamic-hc", 2), variant("static-hc", 2) } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var runs = (await created.Content.ReadFromJsonAsync<JsonNode>())!["runs"]!.AsArray();
        Assert.Equal(["residual", "dynamic-hc", "static-hc"], runs.Select(r => r!["connection"]!.GetValue<string>()));
        Assert.All(runs, r => Assert.Contains($"group:{name}", r!["tags"]!.AsArray().Select(t => t!.GetValue<string>())));
        using (var again = await svc.Http.PostAsJsonAsync("api/groups", new { name, @base = baseSpec, variants = new[] { variant("dynamic-hc", 2) } }))
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        foreach (var r in runs) Assert.Equal("succeeded", (await svc.WaitFor(r!["id"]!.GetValue<long>(), RunClient.Ended, TimeSpan.FromMinutes(3))).Status);

        var table = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/groups/{name}"))!;
        var rows = table["rows"]!.AsArray();
        Assert.Equal(runs[0]!["id"]!.GetValue<long>(), table["baselineRunId"]!.GetValue<long>());
        Assert.True(rows[0]!["isBaseline"]!.GetValue<bool>());
        Assert.Contains("valid-austen-bytes", table["validationSets"]!.AsArray().Select(s => s!.GetValue<string>()));
        foreach (var row in rows)
        {
            var loss = row!["validationLoss"]!["valid-austen-bytes"]!.GetValue<double>();
            Assert.Equal(Math.Exp(loss), row["perplexity"]!["valid-austen-bytes"]!.GetValue<double>(), 6);
            var expected = loss - rows[0]!["validationLoss"]!["valid-austen-bytes"]!.GetValue<double>();
            Assert.Equal(expected, row["lossDelta"]!["valid-austen-bytes"]!.GetValue<double>(), 12);
        }
    }

    static double? Value(JsonArray results, long step, string task, string metric) =>
        results.FirstOrDefault(r => r!["step"]!.GetValue<long>() == step && r["task"]!.GetValue<string>() == task && r["metric"]!.GetValue<string>() == metric)
            ?["value"]!.GetValue<double>();
}
