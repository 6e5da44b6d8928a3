using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Routing;

namespace HcService.Service.Tests;

/// <summary>Keys on every door, and hostile input answered with 4xx while the service keeps serving.</summary>
[Collection("service")]
public class SecurityTests(ServiceFixture svc)
{
    const string Valid = """
        { "name": "fuzz", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 20480 }, "tags": ["t"] }
        """;

    /// <summary>Every mutating route the API has (found from its endpoints, so that a new route is checked too), with
    /// the scope it needs; route values are filled with 1.</summary>
    IEnumerable<(string Method, string Path, string Scope)> MutatingRoutes()
    {
        foreach (var e in svc.Endpoints.OfType<RouteEndpoint>())
        {
            var methods = e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? [];
            foreach (var m in methods.Where(m => m is "POST" or "PUT" or "PATCH" or "DELETE"))
            {
                var path = "/" + System.Text.RegularExpressions.Regex.Replace(e.RoutePattern.RawText!.Trim('/'), @"\{[^}]+\}", "1");
                yield return (m, path, path.StartsWith("/api/keys", StringComparison.Ordinal) ? "admin" : "submit");
            }
        }
    }

    [Fact]
    public async Task EveryMutatingRouteAndTheDashboardNeedAKeyWithTheRightScope()
    {
        var routes = MutatingRoutes().ToList();
        Assert.Contains(routes, r => r.Path == "/api/runs" && r.Method == "POST");
        Assert.Contains(routes, r => r.Path == "/api/runs/1/cancel");
        Assert.Contains(routes, r => r.Path == "/api/keys/1" && r.Method == "DELETE");

        var readKey = await svc.CreateKey("read");
        var submitKey = await svc.CreateKey("submit");
        using var anonymous = svc.Client(null);
        using var wrong = svc.Client(HcService.Api.Auth.ApiKeys.NewKey());
        using var reader = svc.Client(readKey);
        using var submitter = svc.Client(submitKey);
        foreach (var (method, path, scope) in routes.Append(("GET", "/hangfire", "admin")))
        {
            Assert.True(await Status(anonymous, method, path) == HttpStatusCode.Unauthorized, $"{method} {path} without a key");
            Assert.True(await Status(wrong, method, path) == HttpStatusCode.Unauthorized, $"{method} {path} with an unknown key");
            Assert.True(await Status(reader, method, path) == HttpStatusCode.Forbidden, $"{method} {path} with a read key");
            if (scope == "admin") Assert.True(await Status(submitter, method, path) == HttpStatusCode.Forbidden, $"{method} {path} with a submit key");
        }

        // The 401 tells a client (and a browser, for the dashboard) how to authenticate.
        using (var r = await anonymous.GetAsync("hangfire")) Assert.Contains("Basic", r.Headers.WwwAuthenticate.ToString());
        // A browser's Basic login with the key as the password opens the dashboard.
        using (var basic = svc.Client(null))
        {
            basic.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("me:" + svc.AdminKey)));
            using var r = await basic.GetAsync("hangfire");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            // ... and nowhere else: a browser sends Basic credentials with any request to the origin (CSRF).
            using var post = await basic.PostAsync("api/runs/1/cancel", null);
            Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
        }
        // Reads are open by default; a submit key submits; a revoked key stops working.
        using (var r = await anonymous.GetAsync("api/runs")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await submitter.PostAsync("api/runs", new StringContent(Valid, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            var id = (await r.Content.ReadFromJsonAsync<JsonNode>())!["id"]!.GetValue<long>();
            using var c = await submitter.PostAsync($"api/runs/{id}/cancel", null);
            Assert.Equal(HttpStatusCode.OK, c.StatusCode);
        }
        var keys = (await svc.Http.GetFromJsonAsync<JsonArray>("api/keys"))!;
        Assert.DoesNotContain(submitKey, keys.ToJsonString());   // listings never show a key
        var submitId = keys.Single(k => submitKey.StartsWith(k!["prefix"]!.GetValue<string>(), StringComparison.Ordinal) && k["scope"]!.GetValue<string>() == "submit")!["id"]!.GetValue<long>();
        using (var r = await svc.Http.DeleteAsync($"api/keys/{submitId}")) Assert.Equal(HttpStatusCode.NoContent, r.StatusCode);
        await Task.Delay(TimeSpan.FromSeconds(6));   // past the key cache
        Assert.Equal(HttpStatusCode.Unauthorized, await Status(submitter, "POST", "/api/runs"));
    }

    /// <summary>A 401 says which of three things is wrong: no key, a malformed one, or an unknown or revoked one; never
    /// whether some other key exists.</summary>
    [Fact]
    public async Task A401SaysWhetherTheKeyIsMissingMalformedOrUnknownOrRevoked()
    {
        var unknown = HcService.Api.Auth.ApiKeys.NewKey();   // well formed, never stored
        foreach (var (authorization, title, detail) in new (string?, string, string)[]
                 {
                     (null, "An API key is required", "no API key was sent"),
                     ("Bearer hck_not-a-key", "The API key is malformed", "the API key is not of the form this service issues (hck_ followed by 43 letters, digits, '-' or '_'; this one has 13 characters) and matches no key here"),
                     ("Bearer not-even-hck", "The API key is malformed", "and does not start with hck_"),
                     ("Token " + unknown, "The API key is malformed", "the Authorization header's scheme is not Bearer"),
                     ("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("me:" + unknown)), "The API key is malformed", "Basic credentials are taken on /hangfire only"),
                     ("Bearer " + unknown, "The API key is unknown or revoked", "the API key is not known here or was revoked"),
                 })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "api/runs") { Content = new StringContent(Valid, Encoding.UTF8, "application/json") };
            if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
            using var http = svc.Client(null);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = (await response.Content.ReadFromJsonAsync<JsonNode>())!;
            Assert.Equal(title, problem["title"]!.GetValue<string>());
            Assert.Contains(detail, problem["detail"]!.GetValue<string>());
            Assert.DoesNotContain(unknown, problem.ToJsonString());   // a credential is never echoed
        }
    }

    static async Task<HttpStatusCode> Status(HttpClient http, string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path.TrimStart('/'));
        if (method != "GET" && method != "DELETE") request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>Hostile values for every field of a spec: wrong types, huge and negative numbers, traversal, junk.</summary>
    static readonly JsonNode?[] HostileValues =
    [
        JsonValue.Create(true), new JsonArray(), new JsonObject(), JsonValue.Create("not-a-thing"), JsonValue.Create(-1),
        JsonValue.Create(1e308), JsonValue.Create(long.MaxValue), JsonValue.Create(-9.5), JsonValue.Create("../../etc/passwd"),
        JsonValue.Create("/etc/passwd"), JsonValue.Create(new string('x', 50_000)), JsonValue.Create("\u0000\uffff"), null,
    ];

    static readonly string[] Fields =
    [
        "name", "model", "model.preset", "model.overrides", "model.overrides.layers", "model.overrides.dModel", "architecture",
        "connection", "connection.type", "connection.rate", "connection.tanh", "moe", "training", "training.tokenBudget",
        "training.batchTokens", "training.microBatch", "training.lr", "training.schedule", "training.warmupSteps", "training.precision",
        "training.seed", "training.evalInterval", "training.checkpointInterval", "training.checkpointsToKeep", "data", "data.train",
        "data.validation", "tags",
    ];

    /// <summary>The valid spec with <paramref name="value"/> put at <paramref name="path"/>.</summary>
    static string With(string path, JsonNode? value)
    {
        var root = JsonNode.Parse(Valid)!.AsObject();
        var parts = path.Split('.');
        var node = root;
        foreach (var p in parts[..^1])
        {
            if (node[p] is not JsonObject child) node[p] = child = new JsonObject();
            node = child;
        }
        node[parts[^1]] = value?.DeepClone();
        return root.ToJsonString();
    }

    public static IEnumerable<(string What, HttpMethod Method, string Path, HttpContent? Body)> HostileRequests()
    {
        // Every field with every hostile value, minus combinations that are in fact valid (e.g. any string is a valid name).
        foreach (var field in Fields)
            foreach (var value in HostileValues)
            {
                var spec = With(field, value);
                if (IsAcceptable(field, value)) continue;
                yield return ($"{field} = {Short(value)}", HttpMethod.Post, "api/runs", Json(spec));
            }
        foreach (var extra in new[] { "unknownField", "model.unknown", "training.unknown", "connection.streams" })
            yield return ($"unknown field {extra}", HttpMethod.Post, "api/runs", Json(With(extra, JsonValue.Create(1))));
        foreach (var raw in new[] { "", "{", "null", "[]", "123", "\"spec\"", "{\"name\": }", new string('[', 100_000), "{\"a\":" + new string('1', 600_000) + "}" })
            yield return ($"raw body {Short(JsonValue.Create(raw))}", HttpMethod.Post, "api/runs", Json(raw));
        yield return ("2 MB body", HttpMethod.Post, "api/runs", Json("{\"name\": \"" + new string('x', 2 << 20) + "\"}"));
        yield return ("invalid UTF-8", HttpMethod.Post, "api/runs", new ByteArrayContent([0x7b, 0xff, 0xfe, 0x7d]) { Headers = { ContentType = new("application/json") } });
        yield return ("form content", HttpMethod.Post, "api/runs", new FormUrlEncodedContent([new("name", "x")]));
        foreach (var path in new[]
                 {
                     "api/runs/abc", "api/runs/-1", "api/runs/99999999999999999999", "api/runs/0/metrics", "api/runs/1/metrics?maxPoints=-5",
                     "api/runs/1/metrics?maxPoints=abc", "api/runs/1/metrics?maxPoints=100000000", "api/runs/1/checkpoints/../../../etc/passwd",
                     "api/runs/1/checkpoints/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "api/runs/1/checkpoints/-5", "api/runs?status=../../x",
                     "api/runs?page=-1", "api/runs?pageSize=1000000000", "api/runs?page=abc", "api/runs/1/events?names=" + new string('a', 5000),
                     "api/runs/999999/evaluations", "api/runs/999999/checkpoints", "api/datasets/../../etc/passwd", "..%2f..%2fetc%2fpasswd",
                 })
            yield return ($"GET {path[..Math.Min(60, path.Length)]}", HttpMethod.Get, path, null);
        foreach (var path in new[] { "api/runs/999999/cancel", "api/runs/999999/retry", "api/runs/abc/cancel", "api/runs/1/unknown" })
            yield return ($"POST {path}", HttpMethod.Post, path, null);
    }

    /// <summary>Combinations that are valid specs, not hostile ones: null (the default), a plain short name, no tags,
    /// an empty object for a section whose fields all have defaults.</summary>
    static bool IsAcceptable(string field, JsonNode? value) => value switch
    {
        null => true,
        JsonValue v when field == "connection.tanh" => v.TryGetValue<bool>(out _),
        JsonValue v when field == "training.seed" => long.TryParse(v.ToJsonString(), out _),                          // any integer seeds
        JsonValue v when field is "training.evalInterval" or "training.checkpointInterval"                  // past the budget: at the end only
            => long.TryParse(v.ToJsonString(), out var n) && n > 0,
        JsonValue v when field == "name" && v.TryGetValue<string>(out var s) => s.Length <= 200 && !s.Any(char.IsControl),
        JsonArray { Count: 0 } => field is "tags" or "data.validation",                                   // no validation sets
        JsonObject { Count: 0 } => field is "model.overrides" or "moe" or "data" or "training" or "connection",
        _ => false,
    };

    static StringContent Json(string s) => new(s, Encoding.UTF8, "application/json");
    static string Short(JsonNode? v) { var t = v?.ToJsonString() ?? "null"; return t.Length > 30 ? t[..30] + $"...({t.Length} chars)" : t; }

    [Fact]
    public async Task HostileSpecsAndRequestsGet4xxNeverA5xxAndTheServiceKeepsServing()
    {
        var requests = HostileRequests().ToList();
        Assert.True(requests.Count >= 200, $"only {requests.Count} hostile requests");
        var before = await RunCount();
        var failures = new List<string>();
        foreach (var (what, method, path, body) in requests)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body };
            request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString());
            using var response = await svc.Http.SendAsync(request);
            if ((int)response.StatusCode is < 400 or >= 500)
                failures.Add($"{what}: {(int)response.StatusCode} {(await response.Content.ReadAsStringAsync())[..Math.Min(300, (int)(response.Content.Headers.ContentLength ?? 300))]}");
        }
        // An oversized Idempotency-Key is bad input too.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "api/runs") { Content = Json(Valid) })
        {
            request.Headers.Add("Idempotency-Key", new string('k', 5000));
            using var response = await svc.Http.SendAsync(request);
            if ((int)response.StatusCode is < 400 or >= 500) failures.Add($"5000-char Idempotency-Key: {(int)response.StatusCode}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {requests.Count + 1} hostile requests were not answered with 4xx:\n{string.Join("\n", failures)}");
        Assert.Equal(before, await RunCount());   // nothing was created

        // Still serving: health, reads and a valid submission.
        using (var r = await svc.Http.GetAsync("healthz")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await svc.Http.GetAsync("readyz")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var (status, created) = await svc.Submit(Valid);
        Assert.Equal(HttpStatusCode.Created, status);
        using (var r = await svc.Http.PostAsync($"api/runs/{created!["id"]}/cancel", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task ASpecWhoseMemoryCannotFitItsDeviceIsRejectedWithTheEstimate()
    {
        // OLMo-7B: weights and AdamW state alone (16 bytes a parameter, 6.9B parameters) exceed one 80 GiB GPU.
        using var response = await svc.Http.PostAsync("api/runs?queue=cuda", new StringContent(
            """{ "model": { "preset": "olmo-7b" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 4 }, "training": { "tokenBudget": "1B" }, "data": { "train": "corpus-bytes", "validation": ["valid-austen-bytes"] } }""",
            Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("training.microBatch", text);
        Assert.Matches(@"the estimate is \d+\.\d GiB \(weights \+ AdamW state \d+\.\d GiB", text);
        Assert.Contains("of the device's 80.0 GiB is usable", text);
        // OLMo-1B with one sequence per micro-batch fits (to the cuda queue, which no test worker serves; cancelled at once).
        using var fits = await svc.Http.PostAsync("api/runs?queue=cuda", new StringContent(
            """{ "model": { "preset": "olmo-1b" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "40M", "microBatch": 1 }, "data": { "train": "corpus-bytes", "validation": ["valid-austen-bytes"] } }""",
            Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, fits.StatusCode);
        using var cancel = await svc.Http.PostAsync($"api/runs/{(await fits.Content.ReadFromJsonAsync<JsonNode>())!["id"]}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
    }

    async Task<int> RunCount() => (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=1"))!["total"]!.GetValue<int>();
}
