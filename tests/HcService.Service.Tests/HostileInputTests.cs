using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace HcService.Service.Tests;

/// <summary>
/// Input a careless or hostile client sends: every route of the OpenAPI document with hostile values for every one of
/// its parameters (huge, negative, NaN, NUL, unicode controls, wrong types) and hostile bodies never gets a 5xx; specs
/// that used to be accepted and then crash the training process are refused at submit with a 400 naming the field;
/// and while PostgreSQL is down every database-backed route answers 503 with Retry-After, never 500.
/// </summary>
[Collection("service")]
public class HostileInputTests(ServiceFixture svc)
{
    const string Valid = """
        { "name": "hostile", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 20480 }, "tags": ["t"] }
        """;

    /// <summary>Raw (already URL-encoded) values, each put into every parameter in turn.</summary>
    static readonly string[] HostileValues =
    [
        "-1", "0", "2147483648", "9223372036854775808", "99999999999999999999999", "NaN", "-Infinity", "1e309", "abc", "true", "[]",
        "%00", "a%00b", "%E2%80%AE", "%E2%80%8B", "%0D%0A", "%FF%FE", "..%2F..%2Fetc%2Fpasswd", new string('x', 5000),
    ];

    static readonly string[] HostileBodies =
    [
        "[]", "\"text\"", "123", "null", "{", "{\"name\": {\"a\": 1}}", "{\"name\": \"a\u0000b\"}", "{\"x\": 1e400}",
        "{\"name\": \"a\", \"name\": \"b\"}", string.Concat(Enumerable.Repeat("[", 200)) + string.Concat(Enumerable.Repeat("]", 200)),
        "{\"base\": {\"model\": {\"preset\": \"tiny\", \"preset\": \"small\"}}, \"name\": \"g\", \"variants\": [{}]}",
    ];

    /// <summary>(method, path template, parameters as (name, in)) for every operation of the OpenAPI document.</summary>
    async Task<List<(string Method, string Path, List<(string Name, string In)> Parameters, bool Body)>> Operations()
    {
        var doc = (await svc.Http.GetFromJsonAsync<JsonNode>("swagger/v1/swagger.json"))!;
        var ops = new List<(string, string, List<(string, string)>, bool)>();
        foreach (var (path, item) in doc["paths"]!.AsObject())
            foreach (var (method, op) in item!.AsObject())
            {
                var parameters = (op!["parameters"]?.AsArray() ?? []).Select(p => (p!["name"]!.GetValue<string>(), p["in"]!.GetValue<string>()))
                    .Where(p => p.Item2 is "path" or "query").ToList();
                ops.Add((method.ToUpperInvariant(), path, parameters, op["requestBody"] is not null));
            }
        return ops;
    }

    /// <summary>A path with every {parameter} filled: <paramref name="name"/> with <paramref name="value"/>, the others with
    /// an id that does not exist (so that nothing real is cancelled, retried or revoked).</summary>
    static string Fill(string template, string? name = null, string? value = null) =>
        System.Text.RegularExpressions.Regex.Replace(template, @"\{([^}:]+)[^}]*\}", m => m.Groups[1].Value == name ? value! : "999999999");

    async Task<HttpStatusCode> Send(string method, string url, string? body, List<string> failures, string what)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), url.TrimStart('/'));
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        try
        {
            using var response = await svc.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if ((int)response.StatusCode >= 500) failures.Add($"{method} {Shorten(url)} {what}: {(int)response.StatusCode} {Shorten(await response.Content.ReadAsStringAsync())}");
            return response.StatusCode;
        }
        catch (HttpRequestException e) { failures.Add($"{method} {Shorten(url)} {what}: {e.Message}"); return 0; }
    }

    static string Shorten(string s) => s.Length > 160 ? s[..160] + "..." : s;

    [Fact]
    public async Task EveryRouteAnswersHostileParametersAndBodiesWithoutA5xx()
    {
        var ops = await Operations();
        Assert.True(ops.Count >= 20, $"only {ops.Count} operations in the OpenAPI document");
        var failures = new List<string>();
        var requests = 0;
        foreach (var (method, path, parameters, hasBody) in ops)
        {
            var body = hasBody ? "{}" : null;
            foreach (var (name, location) in parameters)
                foreach (var value in HostileValues)
                {
                    var url = location == "path" ? Fill(path, name, value) : $"{Fill(path)}?{name}={value}";
                    await Send(method, url, body, failures, $"({name} = {Shorten(value)})");
                    requests++;
                }
            if (hasBody)
                foreach (var hostile in HostileBodies)
                {
                    await Send(method, Fill(path), hostile, failures, $"(body {Shorten(hostile)})");
                    requests++;
                }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {requests} hostile requests got a 5xx or no answer:\n{string.Join("\n", failures.Take(40))}");
        Assert.True(requests > 500, $"only {requests} requests were sent");
        using var alive = await svc.Http.GetAsync("api/runs?pageSize=1");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    public static TheoryData<string, string, string, string> RefusedSpecs => new()
    {
        // what, the field to replace (a JSON path of Valid), its new raw JSON, the field the 400 names
        { "a width that overflowed the memory check", "model", """{ "preset": "tiny", "overrides": { "dModel": 2000000000, "heads": 1 } }""", "model.dModel" },
        { "a micro-batch whose memory overflows", "training", """{ "tokenBudget": 274877906816, "microBatch": 2147483647, "batchTokens": 274877906816 }""", "training.microBatch" },
        { "a right-to-left override in the name", "name", "\"run\u202Egnp.exe\"", "name" },
        { "a zero-width space in a tag", "tags", "[\"base\u200Bline\"]", "tags" },
        { "an exponent with a suffix", "training", """{ "tokenBudget": "1e3K" }""", "training.tokenBudget" },
        { "55 years of training", "training", """{ "tokenBudget": "100T" }""", "training.tokenBudget" },
        { "a folder of task files as training data", "data", """{ "train": "eval" }""", "data.train" },
        { "a manifest that lies about its token count", "data", """{ "train": "broken-bytes" }""", "data.train" },
        { "token ids beyond the vocabulary", "data", """{ "train": "big-ids-bytes" }""", "data.train" },
        { "a dataset linked from outside the data root", "data", """{ "train": "linked-bytes" }""", "data.train" },
        { "an unreadable manifest", "data", """{ "train": "invalid-manifest" }""", "data.train" },
        { "a task twice (its results would collide in one insert)", "evaluation", """{ "tasks": ["arc_easy", { "name": "arc_easy", "limit": 5 }] }""", "evaluation.tasks" },
        { "a NUL in an evaluation file", "evaluation", """{ "tasks": [{ "name": "x", "file": "eval\u0000/../x" }] }""", "evaluation.tasks[0].file" },
    };

    [Theory]
    [MemberData(nameof(RefusedSpecs))]
    public async Task ASpecThatWouldFailLaterIsRefusedAtSubmitNamingTheField(string what, string field, string json, string named)
    {
        var spec = JsonNode.Parse(Valid)!.AsObject();
        spec[field] = JsonNode.Parse(json);
        var before = (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=1"))!["total"]!.GetValue<long>();
        var (status, problem) = await svc.Submit(spec.ToJsonString());
        Assert.True(status == HttpStatusCode.BadRequest, $"{what}: {(int)status} {problem}");
        Assert.True(problem!["errors"]!.AsObject().Any(e => e.Key == named), $"{what}: the 400 names {string.Join(", ", problem["errors"]!.AsObject().Select(e => e.Key))}, not {named}: {problem}");
        Assert.Equal(before, (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=1"))!["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task DuplicateFieldsAreRefusedInSpecsAndInEveryJsonBody()
    {
        var (status, problem) = await svc.Submit(Valid.Replace("\"architecture\": \"dense\"", "\"architecture\": \"dense\", \"model\": { \"preset\": \"small\" }"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("given twice", problem!.ToJsonString());
        using var group = await svc.Http.PostAsync("api/groups", new StringContent(
            """{ "name": "dup", "name": "dup2", "base": {}, "variants": [{}] }""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, group.StatusCode);
        Assert.Contains("name", await group.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task UnbindableParametersAndNulBytesGetA400NamingThem()
    {
        foreach (var (url, named) in new[]
                 {
                     ("api/runs?page=2147483647&pageSize=500", "page"), ("api/runs?page=99999999999", "page"), ("api/runs?tag=%00", "tag"),
                     ("api/runs?preset=a%00", "preset"), ("api/runs/1/metrics?maxPoints=NaN", "maxPoints"), ("api/groups/%00", "path"),
                 })
        {
            using var r = await svc.Http.GetAsync(url);
            var text = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{url}: {(int)r.StatusCode} {text}");
            // (Kestrel itself refuses a NUL in the path, with a bare 400, before the application sees it.)
            if (named != "path") Assert.True(text.Contains(named, StringComparison.Ordinal), $"{url}: the answer does not name {named}: {text}");
        }
        // One broken dataset is listed with its error; the others are still there.
        var datasets = (await svc.Http.GetFromJsonAsync<JsonArray>("api/datasets"))!;
        Assert.Contains(datasets, d => d!["name"]!.GetValue<string>() == "corpus-bytes" && d["error"] is null);
        Assert.Contains(datasets, d => d!["name"]!.GetValue<string>() == "invalid-manifest" && d["error"]!.GetValue<string>().Contains("not a dataset manifest"));
    }

    [Fact]
    public async Task ADatabaseOutageIsA503WithRetryAfterOnEveryDatabaseRoute()
    {
        var ops = (await Operations()).Where(o => o.Method is "GET" or "POST").ToList();
        await svc.Postgres.StopAsync();
        var failures = new List<string>();
        var unavailable = new List<string>();
        try
        {
            // Past the API key cache, so that authentication needs the database too.
            await Task.Delay(TimeSpan.FromSeconds(6));
            foreach (var (method, path, _, hasBody) in ops)
            {
                if (path.EndsWith("/events", StringComparison.Ordinal) || path.Contains("checkpoints/{", StringComparison.Ordinal)) continue;
                var body = path == "/api/runs" && method == "POST" ? Valid : hasBody ? "{}" : null;
                using var request = new HttpRequestMessage(new HttpMethod(method), Fill(path).TrimStart('/'));
                if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
                using var response = await svc.Http.SendAsync(request);
                var status = (int)response.StatusCode;
                if (status >= 500 && status != 503) failures.Add($"{method} {path}: {status}");
                if (status == 503)
                {
                    unavailable.Add($"{method} {path}");
                    if (response.Headers.RetryAfter is null && path != "/readyz") failures.Add($"{method} {path}: 503 without Retry-After");
                }
            }
        }
        finally { await svc.Postgres.StartAsync(); }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        foreach (var route in new[] { "GET /api/runs", "POST /api/runs", "GET /api/runs/{id}", "GET /api/keys", "GET /api/groups/{name}" })
            Assert.Contains(route, unavailable);
        using var back = await svc.Http.GetAsync("api/runs?pageSize=1");
        Assert.Equal(HttpStatusCode.OK, back.StatusCode);
    }
}
