using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;

namespace HcService.Service.Tests;

/// <summary>
/// The web UI in a real browser against the real stack: headless Chromium from the Debian `chromium` package (no browser
/// download; scripts/setup.sh installs it), driven by Playwright. Screenshots of each view go to artifacts/screenshots.
/// </summary>
[Collection("service")]
public class BrowserTests(ServiceFixture svc)
{
    const string Spec = """
        { "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": BUDGET, "evalTokens": "2K", "evalInterval": 10240, "checkpointInterval": 10240 } }
        """;

    static string Chromium() =>
        new[] { "/usr/lib/chromium/chromium", "/usr/bin/chromium" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("chromium is not installed: scripts/setup.sh installs the Debian package");

    /// <summary>Runs <paramref name="body"/> with a fresh headless Chromium, closed afterwards whatever happens.</summary>
    static async Task WithBrowser(Func<IBrowser, Task> body)
    {
        using var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium(), Headless = true, Args = ["--no-sandbox", "--disable-gpu"] });
        try { await body(browser); }
        finally { await browser.CloseAsync(); }
    }

    static async Task Screenshot(IPage page, string name)
    {
        var folder = Path.Combine(RepoPaths.Root, "artifacts", "screenshots");
        Directory.CreateDirectory(folder);
        await page.ScreenshotAsync(new() { Path = Path.Combine(folder, name + ".png"), FullPage = true });
    }

    [Fact]
    public async Task TheRunsTableFollowsARunWithoutReloadAndItsPageChartsEveryPointTheApiHas()
    {
        svc.EnsureWorker();
        await WithBrowser(async browser =>
        {
            var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1400, Height = 1000 } });
            var errors = new List<string>();
            page.PageError += (_, e) => errors.Add(e);
            await page.GotoAsync(svc.Url + "/");
            await page.Locator("h1", new() { HasText = "Runs" }).WaitForAsync();
            await page.EvaluateAsync("window.__sameDocument = 42");   // gone if the page reloads

            var id = await svc.SubmitOk(Spec.Replace("NAME", "browser-run").Replace("BUDGET", "30720"));
            var row = page.Locator($"tr[data-run='{id}']");
            await row.WaitForAsync(new() { Timeout = 30_000 });
            // The row's status follows the run to its end, without a reload.
            await page.Locator($"tr[data-run='{id}'] [data-status='succeeded']").WaitForAsync(new() { Timeout = 180_000 });
            Assert.Equal(42, await page.EvaluateAsync<int>("window.__sameDocument"));
            Assert.Contains("browser-run", await row.InnerTextAsync());
            // The latest training and validation losses are the API's, as the table's columns show them.
            var listed = (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=100"))!["latest"]!.AsArray().Single(l => l!["runId"]!.GetValue<long>() == id)!;
            var lastStep = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/metrics?names=train/loss&maxPoints=2000"))![0]!["points"]!.AsArray()[^1]!;
            Assert.Equal(lastStep["value"]!.GetValue<double>(), listed["trainLoss"]!["value"]!.GetValue<double>());
            var sets = listed["validationLoss"]!.AsObject().ToList();   // by set name; the cell shows the first, the others counted
            Assert.NotEmpty(sets);
            Assert.All(sets, v => Assert.Equal(30720, v.Value!["tokens"]!.GetValue<long>()));   // validated at the end
            await page.Locator($"tr[data-run='{id}'] td[data-col='train']", new() { HasText = lastStep["value"]!.GetValue<double>().ToString("F4", System.Globalization.CultureInfo.InvariantCulture) }).WaitForAsync();
            Assert.Equal(sets[0].Value!["value"]!.GetValue<double>().ToString("F4", System.Globalization.CultureInfo.InvariantCulture) + (sets.Count > 1 ? $" +{sets.Count - 1}" : ""),
                (await row.Locator("td[data-col='val']").InnerTextAsync()).Trim());
            await Screenshot(page, "runs");

            // An evaluation job analyses the final checkpoint's connections, which the run page shows.
            using (var submitted = await svc.Http.PostAsJsonAsync($"api/runs/{id}/evaluations", new { tasks = new[] { "copa" }, limit = 2 }))
            {
                Assert.Equal(System.Net.HttpStatusCode.Accepted, submitted.StatusCode);
                Assert.Equal("succeeded", await svc.WaitForEvaluation(submitted.Headers.Location!.ToString(), TimeSpan.FromMinutes(2)));
            }

            // The run page: its training-loss chart holds every point of the API's series.
            await row.Locator("a").First.ClickAsync();
            var chart = page.Locator("[data-chart='loss']");
            await chart.WaitForAsync();
            var series = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/metrics?names=train/loss&maxPoints=2000"))![0]!["points"]!.AsArray();
            Assert.Equal(30, series.Count);
            Assert.Equal(series.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), await chart.GetAttributeAsync("data-points"));
            Assert.Equal(1, await page.Locator("[data-chart='val']").CountAsync());
            Assert.Equal(1, await page.Locator("[data-chart='gain']").CountAsync());   // DHC: the composite gain too
            await page.Locator("#checkpoints tr").Nth(3).WaitForAsync();   // filled after the charts: the header and steps 10, 20, 30
            Assert.Equal(4, await page.Locator("#checkpoints tr").CountAsync());
            // The connection analysis: both heatmaps drawn by the server and loaded, and the similarity of tiny's 2 blocks.
            foreach (var source in new[] { "static", "dynamic" })
                await page.WaitForFunctionAsync($"() => {{ const i = document.querySelector(\"img[data-heatmap='{source}']\"); return i && i.complete && i.naturalWidth > 200; }}");
            Assert.Equal("2", await page.Locator("[data-chart='similarity']").GetAttributeAsync("data-points"));
            var analysis = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs/{id}/analysis"))!;
            Assert.Equal(analysis["dynamicCompositeGain"]!.GetValue<double>().ToString("F4", System.Globalization.CultureInfo.InvariantCulture),
                (await page.Locator("[data-gain='dynamic']").InnerTextAsync()).Trim());
            await Screenshot(page, "run");
            Assert.Empty(errors);
        });
    }

    [Fact]
    public async Task TheCompareViewOverlaysTheVariantsWithTheDeltaPanelAndTheApisVerdicts()
    {
        svc.EnsureWorker();
        var name = $"ui-{Guid.NewGuid():N}"[..16];
        using var created = await svc.Http.PostAsJsonAsync("api/groups", new
        {
            name, seeds = new[] { 1, 2 },
            @base = JsonNode.Parse("""
                { "name": "ui-residual", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
                  "training": { "tokenBudget": 10240, "evalTokens": "2K", "evalInterval": 5120 } }
                """),
            variants = new[] { JsonNode.Parse("""{ "name": "ui-dhc4", "connection": { "type": "dynamic-hc", "rate": 4 } }""") },
        });
        var members = (await created.Content.ReadFromJsonAsync<JsonNode>())!["runs"]!.AsArray();
        var runs = members.Select(r => r!["id"]!.GetValue<long>()).Order().ToList();
        // The UI compares ticked runs against the lowest id: the residual run of seed 1, created first.
        Assert.Equal(runs[0], members.Single(r => r!["name"]!.GetValue<string>() == "ui-residual-s1")!["id"]!.GetValue<long>());
        foreach (var id in runs) Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(3))).Status);

        await WithBrowser(async browser =>
        {
            var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1400, Height = 1000 } });
            var errors = new List<string>();
            page.PageError += (_, e) => errors.Add(e);
            // From the runs table: pick the group's runs and compare them.
            await page.GotoAsync($"{svc.Url}/#/?q=ui-");
            foreach (var id in runs) await page.Locator($"tr[data-run='{id}'] input.pick").CheckAsync();
            await page.ClickAsync("#compare-selected");
            await page.WaitForURLAsync(url => url.Contains("#/compare?runs=" + string.Join("%2C", runs)) || url.Contains("#/compare?runs=" + string.Join(",", runs)));

            var chart = page.Locator("[data-chart='compare']");
            await chart.Locator("canvas").WaitForAsync();
            Assert.Equal("2", await chart.GetAttributeAsync("data-series"));                                   // residual and DHC x4
            Assert.Equal("1", await page.Locator("[data-chart='delta']").GetAttributeAsync("data-series"));   // DHC x4 - residual
            // The verdicts are the API's, word for word.
            var comparison = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/comparisons?runs={string.Join(',', runs)}&baseline={runs[0]}"))!;
            var expected = comparison["variants"]![0]!["curves"]!.AsArray().Select(c => c!["delta"]!["verdict"]!.GetValue<string>()).ToList();
            var shown = await page.Locator("#verdicts td.verdict").AllInnerTextsAsync();
            Assert.Equal(expected, shown);
            Assert.All(shown, v => Assert.Matches("^(resolved|not resolved)", v));   // two seeds: an interval, a verdict
            await Screenshot(page, "compare");

            // The group's page: a row per variant with its seeds, a row per run, and a link back to this comparison.
            await page.GotoAsync($"{svc.Url}/#/groups/{name}");
            await page.Locator("#group-variants").WaitForAsync();
            Assert.Equal(2, await page.Locator("#group-variants tr[data-variant]").CountAsync());
            Assert.Equal(runs.Count, await page.Locator("#group-runs tr").CountAsync() - 1);
            Assert.Contains("1 2", await page.Locator("#group-variants tr[data-variant='ui-dhc4']").InnerTextAsync());
            Assert.Contains("#/compare?runs=", await page.Locator("#group-compare").GetAttributeAsync("href"));
            await Screenshot(page, "group");
            Assert.Empty(errors);
        });
    }

    [Fact]
    public async Task WhereReadsNeedAKeyThePageAsksForOneAndThenFollowsTheRunLiveWithIt()
    {
        // A second API on the same database whose reads need a key, as its own process (an API in this process would
        // replace Hangfire's global storage under the fixture's): the run page's event stream and images must carry the
        // key as its other reads do (a browser EventSource or <img src> cannot).
        svc.EnsureWorker();
        var url = $"http://127.0.0.1:{HcService.Store.EmbeddedPostgres.FreePort()}";
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "HcService.Api.dll"));
        psi.Environment["ConnectionStrings__hc"] = svc.Postgres.ConnectionString;
        psi.Environment[HcService.Store.HcSettings.DataRootSetting.Name] = svc.DataRoot;
        psi.Environment[HcService.Store.HcSettings.CheckpointRootSetting.Name] = svc.CheckpointRoot;
        psi.Environment[HcService.Store.HcSettings.ReadsRequireKeySetting.Name] = "true";
        psi.Environment["ASPNETCORE_URLS"] = url;
        var log = new System.Text.StringBuilder();
        using var locked = System.Diagnostics.Process.Start(psi)!;
        locked.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        locked.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        locked.BeginOutputReadLine();
        locked.BeginErrorReadLine();
        long id = 0;
        try
        {
            using (var probe = new HttpClient { BaseAddress = new Uri(url + "/") })
            {
                var deadline = DateTime.UtcNow.AddMinutes(1);
                while (!await Healthy(probe))
                {
                    Assert.True(DateTime.UtcNow < deadline && !locked.HasExited, $"the second API did not start:\n{log}");
                    await Task.Delay(100);
                }
            }
            using (var anonymous = new HttpClient { BaseAddress = new Uri(url + "/") })
                Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await anonymous.GetAsync("api/runs")).StatusCode);
            // A budget it cannot finish during the test: it is followed live, then cancelled.
            id = await svc.SubmitOk(Spec.Replace("NAME", "browser-locked").Replace("BUDGET", "5000000"));
            Assert.Equal("running", (await svc.WaitFor(id, ["running"], TimeSpan.FromMinutes(2))).Status);
            await WithBrowser(async browser =>
            {
                var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1400, Height = 1000 } });
                var errors = new List<string>();
                page.PageError += (_, e) => errors.Add(e);
                await page.GotoAsync($"{url}/#/runs/{id}");
                await page.Locator("p.error", new() { HasText = "401" }).WaitForAsync();   // no key: the read is refused, and said so

                await page.FillAsync("#key", await svc.CreateKey("read"));
                await page.ClickAsync("#key-form button");
                var chart = page.Locator("[data-chart='loss']");
                await chart.WaitForAsync();
                var first = int.Parse((await chart.GetAttributeAsync("data-points"))!, System.Globalization.CultureInfo.InvariantCulture);
                // New points arrive over the stream, with the key: the chart grows without a reload.
                await page.WaitForFunctionAsync($"() => Number(document.querySelector(\"[data-chart='loss']\").dataset.points) >= {first + 5}");
                using (var cancelled = await svc.Http.PostAsync($"api/runs/{id}/cancel", null)) Assert.True(cancelled.IsSuccessStatusCode);
                // So does the status, to the end.
                await page.Locator("h1 [data-status='cancelled']").WaitForAsync(new() { Timeout = 120_000 });
                var all = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/metrics?names=train/loss&maxPoints=100000"))![0]!["points"]!.AsArray().Count;
                await page.WaitForFunctionAsync($"() => Number(document.querySelector(\"[data-chart='loss']\").dataset.points) === {all}");
                Assert.Empty(errors);
            });
        }
        finally
        {
            if (!locked.HasExited) locked.Kill(entireProcessTree: true);
            // Whatever happened, the 5M-token run must not hold the shared worker for the tests after this one.
            if (id > 0) { using var _ = await svc.Http.PostAsync($"api/runs/{id}/cancel", null); }
        }
    }

    static async Task<bool> Healthy(HttpClient client)
    {
        try { using var r = await client.GetAsync("healthz"); return r.IsSuccessStatusCode; }
        catch (HttpRequestException) { return false; }
    }

    [Fact]
    public async Task CancelNeedsAKeyAndWithOneCancelsTheRun()
    {
        svc.EnsureWorker();
        var id = await svc.SubmitOk(Spec.Replace("NAME", "browser-cancel").Replace("BUDGET", "5000000"));
        try
        {
            await WithBrowser(async browser =>
            {
                var page = await browser.NewPageAsync();
                await page.GotoAsync($"{svc.Url}/#/runs/{id}");
                var cancel = page.Locator("#cancel");
                await cancel.WaitForAsync();
                Assert.True(await cancel.IsDisabledAsync());   // no key: read-only
                Assert.True(await page.Locator("#retry").IsDisabledAsync());

                await page.FillAsync("#key", await svc.CreateKey("submit"));
                await page.ClickAsync("#key-form button");
                Assert.False(await cancel.IsDisabledAsync());
                await cancel.ClickAsync();
                var ended = await svc.WaitFor(id, ["cancelled"], TimeSpan.FromMinutes(2));
                Assert.Equal("cancelled", ended.Status);
                await page.Locator("h1 [data-status='cancelled']").WaitForAsync(new() { Timeout = 30_000 });
                await Screenshot(page, "run-cancelled");
            });
        }
        finally
        {
            // Whatever happened, the 5M-token run must not hold the shared worker for the tests after this one.
            using var _ = await svc.Http.PostAsync($"api/runs/{id}/cancel", null);
        }
    }
}
