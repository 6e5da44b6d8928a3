using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>
/// What one caller cannot do to another's work: create a group twice (concurrently), join a group by tagging a run,
/// replay another key's Idempotency-Key or reuse one with a different request, revoke the last admin key; and a revoked
/// key is told so. Runs here go to the cuda queue, which no test worker serves, and are cancelled at the end.
/// </summary>
[Collection("service")]
public class IntegrityTests(ServiceFixture svc)
{
    const string Spec = """
        { "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": 10240 } }
        """;

    async Task CancelAll(IEnumerable<long> ids)
    {
        foreach (var id in ids)
            using (var r = await svc.Http.PostAsync($"api/runs/{id}/cancel", null)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task ConcurrentCreationsOfOneGroupNameMakeExactlyOneGroup()
    {
        var name = $"race-{Guid.NewGuid():N}"[..16];
        var body = new { name, @base = JsonNode.Parse(Spec.Replace("NAME", "base")), variants = new[] { JsonNode.Parse("""{ "connection": { "type": "dynamic-hc", "rate": 2 } }""") } };
        using var start = new SemaphoreSlim(0);
        var posts = Enumerable.Range(0, 6).Select(async _ =>
        {
            await start.WaitAsync();
            using var r = await svc.Http.PostAsJsonAsync("api/groups?queue=cuda", body);
            return (r.StatusCode, Body: await r.Content.ReadAsStringAsync());
        }).ToList();
        start.Release(6);
        var answers = await Task.WhenAll(posts);
        Assert.Equal(1, answers.Count(a => a.StatusCode == HttpStatusCode.Created));
        Assert.Equal(5, answers.Count(a => a.StatusCode == HttpStatusCode.Conflict));
        var created = JsonNode.Parse(answers.Single(a => a.StatusCode == HttpStatusCode.Created).Body)!["runs"]!.AsArray().Select(r => r!["id"]!.GetValue<long>()).ToList();

        var table = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/groups/{name}"))!;
        Assert.Equal(created, table["rows"]!.AsArray().Select(r => r!["run"]!["id"]!.GetValue<long>()).Order());
        Assert.Single(table["rows"]!.AsArray(), r => r!["isBaseline"]!.GetValue<bool>());
        var tagged = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs?tag=group:{name}&pageSize=500"))!["items"]!.AsArray();
        Assert.Equal(created, tagged.Select(r => r!["id"]!.GetValue<long>()).Order());
        await CancelAll(created);
    }

    [Fact]
    public async Task ARunCannotJoinAGroupByItsTags()
    {
        var name = $"owned-{Guid.NewGuid():N}"[..16];
        using (var r = await svc.Http.PostAsJsonAsync("api/groups?queue=cuda", new { name, @base = JsonNode.Parse(Spec.Replace("NAME", "owner")), variants = new[] { new JsonObject() } }))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        var squat = Spec.Replace("NAME", "squatter").Replace("\"training\"", $"\"tags\": [\"group:{name}\"], \"training\"");
        var (status, problem) = await svc.Submit(squat);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("tags", problem!["errors"]!.AsObject().Select(e => e.Key));
        Assert.Contains("POST /api/groups", problem.ToJsonString());
        // Not through a group's own spec either.
        using (var r = await svc.Http.PostAsJsonAsync("api/groups?queue=cuda", new { name = name + "-2", @base = JsonNode.Parse(squat), variants = new[] { new JsonObject() } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("base.tags", await r.Content.ReadAsStringAsync());
        }
        var table = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/groups/{name}"))!;
        Assert.Equal(2, table["rows"]!.AsArray().Count);
        Assert.DoesNotContain(table["rows"]!.AsArray(), r => r!["run"]!["name"]!.GetValue<string>() == "squatter");
        await CancelAll(table["rows"]!.AsArray().Select(r => r!["run"]!["id"]!.GetValue<long>()));
    }

    static async Task<(HttpStatusCode Status, JsonNode? Body)> Post(HttpClient http, string spec, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/runs?queue=cuda") { Content = new StringContent(spec, Encoding.UTF8, "application/json") };
        request.Headers.Add("Idempotency-Key", key);
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }

    [Fact]
    public async Task IdempotencyKeysBelongToTheirCallerAndToTheirFirstRequest()
    {
        using var alice = svc.Client(await svc.CreateKey("submit"));
        using var bob = svc.Client(await svc.CreateKey("submit"));
        var key = $"idem-{Guid.NewGuid():N}";
        var (first, a) = await Post(alice, Spec.Replace("NAME", "alice"), key);
        Assert.Equal(HttpStatusCode.Created, first);
        var (again, a2) = await Post(alice, Spec.Replace("NAME", "alice"), key);
        Assert.Equal(HttpStatusCode.OK, again);
        Assert.Equal(a!["id"]!.GetValue<long>(), a2!["id"]!.GetValue<long>());
        // Another caller's equal key is another key: Bob gets his own run, never Alice's.
        var (other, b) = await Post(bob, Spec.Replace("NAME", "bob"), key);
        Assert.Equal(HttpStatusCode.Created, other);
        Assert.NotEqual(a["id"]!.GetValue<long>(), b!["id"]!.GetValue<long>());
        Assert.Equal("bob", b["name"]!.GetValue<string>());
        // The same key with a different request: 422, naming the key, and nothing created.
        var before = (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=1"))!["total"]!.GetValue<long>();
        var (reused, problem) = await Post(alice, Spec.Replace("NAME", "alice-changed"), key);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused);
        Assert.Contains(key, problem!["detail"]!.GetValue<string>());
        Assert.Equal(before, (await svc.Http.GetFromJsonAsync<JsonNode>("api/runs?pageSize=1"))!["total"]!.GetValue<long>());
        await CancelAll([a["id"]!.GetValue<long>(), b["id"]!.GetValue<long>()]);
    }

    [Fact]
    public async Task TheLastAdminKeyCannotBeRevokedAndARevokedKeyIsToldSo()
    {
        // Only the fixture's admin key stays active: then it is the last one.
        var keys = (await svc.Http.GetFromJsonAsync<JsonArray>("api/keys"))!;
        var mine = keys.Single(k => svc.AdminKey.StartsWith(k!["prefix"]!.GetValue<string>(), StringComparison.Ordinal) && k["revokedAt"] is null)!["id"]!.GetValue<long>();
        foreach (var k in keys.Where(k => k!["scope"]!.GetValue<string>() == "admin" && k["revokedAt"] is null && k["id"]!.GetValue<long>() != mine))
            using (var r = await svc.Http.DeleteAsync($"api/keys/{k!["id"]}")) Assert.Equal(HttpStatusCode.NoContent, r.StatusCode);
        using (var r = await svc.Http.DeleteAsync($"api/keys/{mine}"))
        {
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
            Assert.Contains("only admin key left", await r.Content.ReadAsStringAsync());
        }
        // Two admin keys, the only ones, revoking each other at once: exactly one of them goes. (The fixture's key is
        // revoked for this and replaced at the end.)
        var second = await svc.CreateKey("admin");
        var third = await svc.CreateKey("admin");
        using var secondClient = svc.Client(second);
        using var thirdClient = svc.Client(third);
        using (var r = await secondClient.DeleteAsync($"api/keys/{mine}")) Assert.Equal(HttpStatusCode.NoContent, r.StatusCode);
        try
        {
            var ids = (await thirdClient.GetFromJsonAsync<JsonArray>("api/keys"))!.Where(k => k!["revokedAt"] is null && k["scope"]!.GetValue<string>() == "admin")
                .Select(k => k!["id"]!.GetValue<long>()).ToList();
            Assert.Equal(2, ids.Count);
            var both = await Task.WhenAll(secondClient.DeleteAsync($"api/keys/{ids[1]}"), thirdClient.DeleteAsync($"api/keys/{ids[0]}"));
            Assert.Equal([HttpStatusCode.NoContent, HttpStatusCode.Conflict], both.Select(r => r.StatusCode).Order());
            foreach (var r in both) r.Dispose();

            // The revoked fixture key is told it was revoked (once the key cache's few seconds are over).
            using var revoked = svc.Client(svc.AdminKey);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (true)
            {
                using var r = await revoked.PostAsync("api/runs", new StringContent("{}", Encoding.UTF8, "application/json"));
                var text = await r.Content.ReadAsStringAsync();
                if (r.StatusCode == HttpStatusCode.Unauthorized)
                {
                    Assert.Contains("was revoked at", text);
                    Assert.Contains("The API key is unknown or revoked", text);
                    break;
                }
                Assert.True(DateTime.UtcNow < deadline, $"the revoked key still answers {(int)r.StatusCode}");
                await Task.Delay(200);
            }
        }
        finally
        {
            // The fixture gets a working admin key back from whichever admin key is left.
            foreach (var client in new[] { secondClient, thirdClient })
            {
                var created = await client.PostAsJsonAsync("api/keys", new { name = "fixture admin", scope = "admin" });
                if (created.IsSuccessStatusCode) { await svc.AdoptAdminKey(created); break; }
            }
        }
        using (var unknown = svc.Client(HcService.Api.Auth.ApiKeys.NewKey()))
        using (var r = await unknown.PostAsync("api/runs", new StringContent("{}", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Contains("not known here", await r.Content.ReadAsStringAsync());
        }
    }
}
