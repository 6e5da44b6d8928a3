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
        var status = await svc.WaitForEvaluation(submitted.Headers.Location!.ToString(), TimeSpan.FromMinutes(2));
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
        Assert.True(analysis["staticCompositeGain"]!.GetValue<double>() > 0);
        Assert.True(double.IsFinite(analysis["dynamicCompositeGain"]!.GetValue<double>()));
        using (var heatmap = await svc.Http.GetAsync($"api/runs/{hc}/analysis/heatmap.svg?step=10&source=dynamic"))
        {
            // Drawn from the stored analysis: its title, and the value of every cell that can hold one (c(k, j) for j < k).
            Assert.Equal(HttpStatusCode.OK, heatmap.StatusCode);
            var texts = SvgTexts(await heatmap.Content.ReadAsStringAsync());
            Assert.Contains("connection matrix, dynamic weights (token mean), step 10", texts);
            var dynamicValues = analysis["dynamicMatrix"]!["values"]!.AsArray();
            for (var k = 0; k < dynamicValues.Count; k++)
                for (var j = 0; j <= k; j++)
                    Assert.Contains(HcService.Plots.Heatmap.Number(dynamicValues[k]![j]!.GetValue<double>()), texts);
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
        // Each accuracy with its binomial standard error on its 5 items, sqrt(p (1 - p) / 4); the delta is noise within two
        // standard errors of the difference.
        double Se(double p) => Math.Sqrt(p * (1 - p) / 4);
        var (pb, pc) = (arc["baseline"]!.GetValue<double>(), arc["candidate"]!.GetValue<double>());
        Assert.Equal(Se(pb), arc["baselineStderr"]!.GetValue<double>(), 12);
        Assert.Equal(Se(pc), arc["candidateStderr"]!.GetValue<double>(), 12);
        Assert.Equal(Math.Sqrt(Se(pb) * Se(pb) + Se(pc) * Se(pc)), arc["deltaStderr"]!.GetValue<double>(), 12);
        Assert.Equal(Math.Abs(pc - pb) < 2 * Math.Sqrt(Se(pb) * Se(pb) + Se(pc) * Se(pc)), arc["noise"]!.GetValue<bool>());
        var listed = results.Single(r => r!["step"]!.GetValue<long>() == 20 && r["task"]!.GetValue<string>() == "arc_easy" && r["metric"]!.GetValue<string>() == "acc")!;
        Assert.Equal(Se(Value(results, 20, "arc_easy", "acc")!.Value), listed["stderr"]!.GetValue<double>(), 12);
        Assert.Null(results.First(r => r!["metric"]!.GetValue<string>() == "items")!["stderr"]);
        // One run a side: the seed-paired view exists and says that one seed settles nothing.
        var paired = comparison["variants"]!.AsArray().Single()!;
        Assert.NotEmpty(paired["curves"]!.AsArray());
        Assert.All(paired["curves"]!.AsArray(), c => Assert.StartsWith("one seed: not resolved", c!["delta"]!["verdict"]!.GetValue<string>()));

        using var plot = await svc.Http.GetAsync(comparison["plotUrl"]!.GetValue<string>().TrimStart('/'));
        Assert.Equal("image/svg+xml", plot.Content.Headers.ContentType!.MediaType);
        var plotTexts = SvgTexts(await plot.Content.ReadAsStringAsync());
        Assert.Contains("training loss (nats/token)", plotTexts);
        foreach (var id in new[] { baseline, hc }) Assert.Contains(plotTexts, t => t.Contains($"(run {id}, ", StringComparison.Ordinal));   // the legend
    }

    static List<string> SvgTexts(string svg) => XDocument.Parse(svg).Descendants().Where(e => e.Name.LocalName == "text").Select(t => t.Value.Trim()).ToList();

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

    /// <summary>The done-means of issue 14 through the API: a group with seeds runs every variant at every seed; the same
    /// seed gives residual and DHC x4 the same step-0 validation loss; the table and the comparison pair runs by seed and
    /// report mean, std, the paired delta with its t interval and a verdict; a variant that also changes the init is
    /// marked confounded; `hc compare --group` prints it.</summary>
    [Fact]
    public async Task AGroupWithSeedsPairsEveryVariantWithTheBaselineOfItsSeed()
    {
        svc.EnsureWorker();
        var baseSpec = JsonNode.Parse("""
            { "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 10240, "evalTokens": "2K", "evalInterval": 5120 },
              "evaluation": { "tasks": ["arc_easy", "hellaswag", "piqa", "sciq", "openbookqa", "copa", "winogrande"], "limit": 5 } }
            """)!;
        var dhc = JsonNode.Parse("""{ "name": "dhc4", "connection": { "type": "dynamic-hc", "rate": 4 } }""")!;
        var scaled = JsonNode.Parse("""{ "name": "dhc4-scaled", "connection": { "type": "dynamic-hc", "rate": 4, "scaleOutputInit": true } }""")!;
        using (var bad = await svc.Http.PostAsJsonAsync("api/groups", new { name = "seeds-bad", @base = baseSpec, variants = new[] { dhc }, seeds = new[] { 1, 1 } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("distinct non-negative integers", await bad.Content.ReadAsStringAsync());
        }
        var seeded = baseSpec.DeepClone();
        seeded["training"]!["seed"] = 5;
        using (var bad = await svc.Http.PostAsJsonAsync("api/groups", new { name = "seeds-bad", @base = seeded, variants = new[] { dhc }, seeds = new[] { 1, 2 } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("base.training.seed", await bad.Content.ReadAsStringAsync());
        }

        var name = $"seeds-{Guid.NewGuid():N}"[..20];
        using var created = await svc.Http.PostAsJsonAsync("api/groups", new { name, @base = baseSpec, variants = new[] { dhc, scaled }, seeds = new[] { 1, 2, 3 } });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var runs = (await created.Content.ReadFromJsonAsync<JsonNode>())!["runs"]!.AsArray().Select(r => (Id: r!["id"]!.GetValue<long>(), Name: r["name"]!.GetValue<string>())).ToList();
        Assert.Equal(new[] { $"{name}-0", "dhc4", "dhc4-scaled" }.SelectMany(v => new[] { 1, 2, 3 }.Select(s => $"{v}-s{s}")), runs.Select(r => r.Name));
        foreach (var r in runs) Assert.Equal("succeeded", (await svc.WaitFor(r.Id, RunClient.Ended, TimeSpan.FromMinutes(3))).Status);
        long Id(string runName) => runs.Single(r => r.Name == runName).Id;
        foreach (var s in new[] { 1, 2, 3 })
            Assert.Equal(s, (await svc.Run(Id($"dhc4-s{s}")))["spec"]!["training"]!["seed"]!.GetValue<long>());

        // Step 0: the same seed, the same host weights; the paper's rescaled init starts elsewhere; another seed elsewhere too.
        const string Austen = "val/valid-austen-bytes/loss";
        async Task<double> StepZero(string runName) => (await svc.Series(Id(runName), Austen)).Single(p => p.Step == 0).Value;
        var residual0 = await StepZero($"{name}-0-s1");
        var matched = Math.Abs(await StepZero("dhc4-s1") - residual0);
        Assert.True(matched < 5e-3, $"step-0 validation loss: residual {residual0}, DHC x4 differs by {matched}");
        Assert.True(Math.Abs(await StepZero("dhc4-scaled-s1") - residual0) > 2 * matched);
        Assert.NotEqual(residual0, await StepZero($"{name}-0-s2"));

        // The table: each run against the baseline of its own seed; per variant, mean and std over seeds and the paired
        // delta with its t interval, recomputed here from the runs' final losses.
        var table = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/groups/{name}"))!;
        double Final(string runName) => table["rows"]!.AsArray().Single(r => r!["run"]!["name"]!.GetValue<string>() == runName)!["validationLoss"]!["valid-austen-bytes"]!.GetValue<double>();
        double RowDelta(string runName) => table["rows"]!.AsArray().Single(r => r!["run"]!["name"]!.GetValue<string>() == runName)!["lossDelta"]!["valid-austen-bytes"]!.GetValue<double>();
        var deltas = new[] { 1, 2, 3 }.Select(s => Final($"dhc4-s{s}") - Final($"{name}-0-s{s}")).ToArray();
        Assert.Equal(deltas[1], RowDelta("dhc4-s2"), 12);
        var variants = table["variants"]!.AsArray();
        Assert.Equal(3, variants.Count);
        Assert.True(variants[0]!["isBaseline"]!.GetValue<bool>());
        Assert.Equal([1L, 2, 3], variants[0]!["variant"]!["seeds"]!.AsArray().Select(x => x!.GetValue<long>()));
        var row = variants.Single(v => v!["variant"]!["label"]!.GetValue<string>() == "dhc4")!;
        var finals = new[] { 1, 2, 3 }.Select(s => Final($"dhc4-s{s}")).ToArray();
        Assert.Equal(finals.Average(), row["validationLoss"]!["valid-austen-bytes"]!["mean"]!.GetValue<double>(), 12);
        Assert.Equal(Std(finals), row["validationLoss"]!["valid-austen-bytes"]!["std"]!.GetValue<double>(), 12);
        var delta = row["lossDelta"]!["valid-austen-bytes"]!;
        var half = 4.30265273 * Std(deltas) / Math.Sqrt(3);
        Assert.Equal(3, delta["pairs"]!.GetValue<int>());
        Assert.Equal(deltas.Average(), delta["mean"]!.GetValue<double>(), 12);
        Assert.Equal(deltas.Average() - half, delta["low"]!.GetValue<double>(), 6);
        Assert.Equal(deltas.Average() + half, delta["high"]!.GetValue<double>(), 6);
        var resolved = deltas.Average() + half < 0 || deltas.Average() - half > 0;
        Assert.Equal(resolved, delta["resolved"]!.GetValue<bool>());
        Assert.StartsWith(resolved ? "resolved" : "not resolved", delta["verdict"]!.GetValue<string>());
        Assert.False(row["confounded"]!.GetValue<bool>());
        var scaledRow = variants.Single(v => v!["variant"]!["label"]!.GetValue<string>() == "dhc4-scaled")!;
        Assert.True(scaledRow["confounded"]!.GetValue<bool>());
        Assert.Equal("model.connection.scaleOutputInit", scaledRow["confounds"]!.AsArray().Single()!["field"]!.GetValue<string>());
        Assert.StartsWith("confounded: the runs also differ in model.connection.scaleOutputInit", scaledRow["verdict"]!.GetValue<string>());

        // The downstream average of each run with its standard error, sqrt(sum of its 7 tasks' se^2) / 7 with
        // se = sqrt(p (1 - p) / 4) on 5 items; a difference to the same seed's baseline within 2 SE is noise.
        async Task<double> AverageSe(string runName)
        {
            var results = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{Id(runName)}/evaluations"))!;
            var last = results.Max(r => r!["step"]!.GetValue<long>());
            var tasks = new[] { ("arc_easy", "acc_norm"), ("hellaswag", "acc_norm"), ("piqa", "acc_norm"), ("sciq", "acc_norm"), ("openbookqa", "acc_norm"), ("copa", "acc"), ("winogrande", "acc") };
            return Math.Sqrt(tasks.Sum(t => { var p = Value(results, last, t.Item1, t.Item2)!.Value; return p * (1 - p) / 4; })) / 7;
        }
        JsonNode RunRow(string runName) => table["rows"]!.AsArray().Single(r => r!["run"]!["name"]!.GetValue<string>() == runName)!;
        var (seB, seC) = (await AverageSe($"{name}-0-s2"), await AverageSe("dhc4-s2"));
        Assert.Equal(seC, RunRow("dhc4-s2")["downstreamStderr"]!.GetValue<double>(), 12);
        var avgDelta = RunRow("dhc4-s2")["downstreamAverage"]!.GetValue<double>() - RunRow($"{name}-0-s2")["downstreamAverage"]!.GetValue<double>();
        Assert.Equal(avgDelta, RunRow("dhc4-s2")["downstreamDelta"]!.GetValue<double>(), 12);
        Assert.Equal(Math.Abs(avgDelta) < 2 * Math.Sqrt(seB * seB + seC * seC), RunRow("dhc4-s2")["downstreamNoise"]!.GetValue<bool>());
        Assert.Equal(3, row["downstreamDelta"]!["pairs"]!.GetValue<int>());

        // The comparison: the same pairs, at equal tokens, with the speedup over seeds.
        var comparison = (await svc.Http.GetFromJsonAsync<JsonNode>(table["comparisonUrl"]!.GetValue<string>().TrimStart('/')))!;
        var byVariant = comparison["variants"]!.AsArray().Single(v => v!["variant"]!["label"]!.GetValue<string>() == "dhc4")!;
        var curve = byVariant["curves"]!.AsArray().Single(c => c!["metric"]!.GetValue<string>() == Austen)!;
        Assert.Equal(deltas.Average(), curve["delta"]!["mean"]!.GetValue<double>(), 12);
        Assert.Equal(3, curve["speedup"]!["pairs"]!.GetValue<int>());

        var cli = await HcProcess.RunAsync("compare", "--group", name, "--server", svc.Url);
        Assert.True(cli.ExitCode == 0, cli.Output);
        Assert.Contains($"baseline variant: {name}-0 (residual; runs ", cli.Stdout);
        Assert.Contains("seeds 1 2 3)", cli.Stdout);
        Assert.Contains("candidate variant: dhc4 (dynamic-hc x4;", cli.Stdout);
        Assert.Contains("CONFOUNDED: model.connection.scaleOutputInit is false in the baseline, true in the candidate", cli.Stdout);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{deltas.Average():+0.0000;-0.0000} [{deltas.Average() - half:+0.0000;-0.0000}, {deltas.Average() + half:+0.0000;-0.0000}]"), cli.Stdout);
        Assert.Contains("verdict: val/valid-austen-bytes/loss: ", cli.Stdout);
        var usage = await HcProcess.RunAsync("compare", "1", "--server", svc.Url);
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("give at least two run ids to compare (got one: 1), or a group name", usage.Output);
    }

    /// <summary>The HC family through the service: one group of residual, Frac-Connections, mHC and mHC-lite; every run
    /// succeeds, none is confounded (matched init), and the stream-mixing ones show their composite gain, which mHC keeps
    /// at 1 (doubly stochastic A_r).</summary>
    [Fact]
    public async Task AGroupRunsTheHcFamilyAndShowsItsCompositeGains()
    {
        svc.EnsureWorker();
        var baseSpec = JsonNode.Parse("""
            { "name": "family-residual", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 10240, "evalTokens": "2K", "evalInterval": 10240 } }
            """)!;
        JsonNode Variant(string name, string connection) => JsonNode.Parse($$"""{ "name": "{{name}}", "connection": {{connection}} }""")!;
        var name = $"family-{Guid.NewGuid():N}"[..20];
        using var created = await svc.Http.PostAsJsonAsync("api/groups", new
        {
            name, @base = baseSpec,
            variants = new[] { Variant("family-dfc4", """{ "type": "frac", "fractions": 4 }"""), Variant("family-mhc4", """{ "type": "mhc", "rate": 4 }"""),
                Variant("family-mhclite4", """{ "type": "mhc-lite", "rate": 4 }""") },
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var runs = (await created.Content.ReadFromJsonAsync<JsonNode>())!["runs"]!.AsArray();
        Assert.Equal(["residual", "frac", "mhc", "mhc-lite"], runs.Select(r => r!["connection"]!.GetValue<string>()));
        foreach (var r in runs) Assert.Equal("succeeded", (await svc.WaitFor(r!["id"]!.GetValue<long>(), RunClient.Ended, TimeSpan.FromMinutes(3))).Status);

        var table = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/groups/{name}"))!;
        double? Gain(string runName) => table["rows"]!.AsArray().Single(r => r!["run"]!["name"]!.GetValue<string>() == runName)!["compositeGain"]?.GetValue<double>();
        Assert.Null(Gain("family-residual"));
        Assert.Null(Gain("family-dfc4"));
        Assert.Equal(1.0, Gain("family-mhc4")!.Value, 4);
        Assert.Equal(1.0, Gain("family-mhclite4")!.Value, 4);
        Assert.All(table["variants"]!.AsArray().Skip(1), v => Assert.False(v!["confounded"]!.GetValue<bool>(), v.ToJsonString()));
        var mhc = runs.Single(r => r!["connection"]!.GetValue<string>() == "mhc")!["id"]!.GetValue<long>();
        Assert.Equal(1.0, (await svc.Series(mhc, "hc/composite_gain")).Last().Value, 4);
    }

    static double Std(double[] x) => Math.Sqrt(x.Sum(v => (v - x.Average()) * (v - x.Average())) / (x.Length - 1));

    static double? Value(JsonArray results, long step, string task, string metric) =>
        results.FirstOrDefault(r => r!["step"]!.GetValue<long>() == step && r["task"]!.GetValue<string>() == task && r["metric"]!.GetValue<string>() == metric)
            ?["value"]!.GetValue<double>();
}
