using System.CommandLine;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace HcService.Cli.Client;

/// <summary>`hc keys list|create|revoke`: API key management through the API (an admin key: --api-key or $HC_API_KEY).</summary>
static class KeysCommand
{
    public static Command Create()
    {
        var server = ClientCommands.ServerOption();
        var apiKey = ClientCommands.ApiKeyOption();

        var list = new Command("list", "List keys: id, name, prefix, scope, created, revoked (never the keys)") { server, apiKey };
        list.SetAction(async (r, ct) =>
        {
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            using var response = await http.GetAsync("/api/keys", ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
            Console.WriteLine($"{"id",4}  {"scope",-7} {"prefix",-11} {"name",-30} {"created",-26} revoked");
            foreach (var k in JsonNode.Parse(body)!.AsArray())
                Console.WriteLine($"{k!["id"],4}  {k["scope"],-7} {k["prefix"],-11} {k["name"],-30} {k["createdAt"],-26} {k["revokedAt"]?.ToString() ?? "-"}");
            return 0;
        });

        var name = new Option<string>("--name") { Description = "What the key is for (a person, a CI pipeline)", Required = true };
        var scope = new Option<string>("--scope") { Description = "read, submit or admin", DefaultValueFactory = _ => "submit" };
        scope.AcceptOnlyFromAmong("read", "submit", "admin");
        var create = new Command("create", "Create a key; it is printed this once") { name, scope, server, apiKey };
        create.SetAction(async (r, ct) =>
        {
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            using var response = await http.PostAsJsonAsync("/api/keys", new { name = r.GetValue(name), scope = r.GetValue(scope) }, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
            var k = JsonNode.Parse(body)!;
            Console.WriteLine($"key {k["id"]} ({k["scope"]}, {k["name"]})");
            Console.WriteLine($"API key: {k["key"]}");
            return 0;
        });

        var id = new Argument<long>("id") { Description = "Key id (hc keys list)" };
        var revoke = new Command("revoke", "Revoke a key (effective within seconds)") { id, server, apiKey };
        revoke.SetAction(async (r, ct) =>
        {
            using var http = ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
            using var response = await http.DeleteAsync($"/api/keys/{r.GetValue(id)}", ct);
            if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, await response.Content.ReadAsStringAsync(ct));
            Console.WriteLine($"key {r.GetValue(id)} revoked");
            return 0;
        });

        return new Command("keys", "Manage API keys (scopes: read < submit < admin)") { list, create, revoke };
    }
}
