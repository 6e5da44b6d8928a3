using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using HcService.Contract.Config;
using HcService.Contract.Jobs;
using HcService.Store;

namespace HcService.Service.Tests;

/// <summary>
/// The API reference (/swagger/v1/swagger.json): Redocly CLI lints it with 0 errors and 0 warnings (the repository's
/// redocly.yaml), and, checked here directly: the job spec's fields carry their defaults and allowed values, enums and
/// required fields; a token count is an integer or a string like "200K"; every operation has an id, a described tag and
/// its 4xx answers; the padlock is on exactly the routes that need a key in the running configuration; the job spec's
/// example is a spec the service accepts.
/// </summary>
[Collection("service")]
public class OpenApiDocumentTests(ServiceFixture svc)
{
    async Task<JsonNode> Document() => (await svc.Http.GetFromJsonAsync<JsonNode>("swagger/v1/swagger.json"))!;

    static JsonNode Schema(JsonNode doc, string name) => doc["components"]!["schemas"]![name] ?? throw new Xunit.Sdk.XunitException($"no schema {name}");

    static IEnumerable<(string Path, string Method, JsonNode Operation)> Operations(JsonNode doc) =>
        doc["paths"]!.AsObject().SelectMany(p => p.Value!.AsObject().Select(m => (p.Key, m.Key, m.Value!)));

    /// <summary>Redocly CLI, installed by scripts/setup.sh into .tools/redocly (pinned there).</summary>
    static string Redocly => Path.Combine(RepoPaths.Root, ".tools", "redocly", "node_modules", ".bin", "redocly");

    [Fact]
    public async Task RedoclyLintReportsNoErrorsAndNoWarnings()
    {
        Assert.True(File.Exists(Redocly), $"Redocly CLI is not installed at {Redocly}: run scripts/setup.sh (it installs the pinned @redocly/cli there; it needs Node.js 20.19+ or 22.12+ with npm)");
        var file = Path.Combine(RepoPaths.TempDir("openapi"), "swagger.json");
        await File.WriteAllTextAsync(file, await svc.Http.GetStringAsync("swagger/v1/swagger.json"));
        var psi = new ProcessStartInfo(Redocly) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoPaths.Root };
        foreach (var a in new[] { "lint", file, "--config", Path.Combine(RepoPaths.Root, "redocly.yaml"), "--format", "json" }) psi.ArgumentList.Add(a);
        psi.Environment["REDOCLY_TELEMETRY"] = "off";                // no network: no usage reports,
        psi.Environment["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true";   // no update check
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        var output = $"exit code {p.ExitCode}\n{await stdout}\n{await stderr}";
        var totals = JsonNode.Parse(await stdout)?["totals"];
        Assert.True(p.ExitCode == 0 && totals?["errors"]?.GetValue<int>() == 0 && totals["warnings"]?.GetValue<int>() == 0,
            $"redocly lint of the API's OpenAPI document:\n{output}");
    }

    /// <summary>The types of a job spec, by the JSON path of their objects.</summary>
    static readonly (string Path, string Schema)[] SpecObjects =
    [
        ("", "JobSpec"), ("model", "ModelSpec"), ("model.overrides", "ModelOverrides"), ("connection", "ConnectionSpec"), ("moe", "MoeSpec"),
        ("training", "TrainingSpec"), ("evaluation", "EvaluationSpec"), ("data", "DataSpec"),
    ];

    [Fact]
    public async Task EveryJobSpecFieldIsDescribedWithItsDefaultAndTheRequiredOnesAreMarked()
    {
        var doc = await Document();
        var undescribed = new List<string>();
        foreach (var (path, name) in SpecObjects)
        {
            var schema = Schema(doc, name);
            Assert.False(schema["additionalProperties"]?.GetValue<bool>() ?? true, $"{name} must refuse unknown fields (additionalProperties: false)");
            var required = schema["required"]?.AsArray().Select(r => r!.GetValue<string>()).ToHashSet() ?? [];
            foreach (var (field, property) in schema["properties"]!.AsObject())
            {
                var full = path.Length == 0 ? field : $"{path}.{field}";
                // An object field is a $ref (no description beside it in OpenAPI 3.0): its own schema describes it.
                var description = property!["$ref"] is { } reference ? Schema(doc, reference.GetValue<string>().Split('/')[^1])["description"]?.GetValue<string>()
                    : property["description"]?.GetValue<string>();
                if (description is null || !(description.Contains("Default", StringComparison.Ordinal) || required.Contains(field) || property["$ref"] is not null))
                    undescribed.Add($"{full}: {description ?? "(no description)"}");
            }
        }
        Assert.True(undescribed.Count == 0, "job spec fields without a description that gives their default:\n" + string.Join("\n", undescribed));
        Assert.Equal(["model", "architecture", "connection", "training"], Schema(doc, "JobSpec")["required"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal(["preset"], Schema(doc, "ModelSpec")["required"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal(["type"], Schema(doc, "ConnectionSpec")["required"]!.AsArray().Select(r => r!.GetValue<string>()));
        // The budget's field depends on the task (tokenBudget or imageBudget): each says so, neither is required by the schema.
        Assert.Null(Schema(doc, "TrainingSpec")["required"]);
        Assert.Contains("required for language-modeling", Schema(doc, "TrainingSpec")["properties"]!["tokenBudget"]!["description"]!.GetValue<string>());
        Assert.Contains("required for image-classification", Schema(doc, "TrainingSpec")["properties"]!["imageBudget"]!["description"]!.GetValue<string>());
        Assert.Contains("Default: 4 for static-hc, dynamic-hc, mhc and mhc-lite", Schema(doc, "ConnectionSpec")["properties"]!["rate"]!["description"]!.GetValue<string>());
    }

    /// <summary>The enum fields of a spec: their schema and property, and the spec (the shortest valid one) with a value put in.</summary>
    public static TheoryData<string, string, string> EnumFields => new()
    {
        { "JobSpec", "architecture", "architecture" },
        { "JobSpec", "task", "task" },
        { "ModelSpec", "preset", "model.preset" },
        { "ConnectionSpec", "type", "connection.type" },
        { "ConnectionSpec", "mhcInit", "connection.mhcInit" },
        { "TrainingSpec", "schedule", "training.schedule" },
        { "TrainingSpec", "precision", "training.precision" },
    };

    /// <summary>Each string field with a fixed set of values is an enum, and the enum is exactly what the resolver takes:
    /// every value resolves (with the type of connection it needs), and a value outside it is refused naming the field.</summary>
    [Theory]
    [MemberData(nameof(EnumFields))]
    public async Task StringFieldsWithFixedValuesAreEnumsOfExactlyTheValuesTheServiceTakes(string schema, string property, string field)
    {
        var values = Schema(await Document(), schema)["properties"]![property]!["enum"]?.AsArray().Select(v => v!.GetValue<string>()).ToList();
        Assert.True(values is { Count: >= 2 }, $"{schema}.{property} has no enum");
        foreach (var value in values.Append("not-a-value"))
        {
            var spec = JsonNode.Parse("""{ "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "20K" } }""")!;
            if (field == "connection.mhcInit") spec["connection"]!["type"] = "mhc";
            // A vision preset is an image-classification job, budgeted in images.
            if (field == "model.preset" && value.StartsWith("vit-", StringComparison.Ordinal))
            {
                spec["task"] = "image-classification";
                spec["training"] = JsonNode.Parse("""{ "imageBudget": "1M" }""");
            }
            var parts = field.Split('.');
            (parts.Length == 1 ? spec : spec[parts[0]]!)[parts[^1]] = value;
            var errors = new List<ConfigError>();
            try { JobPlan.Resolve(JobSpec.Parse(spec.ToJsonString()), value == "bf16" ? DeviceKind.Cuda : DeviceKind.Cpu); }
            catch (ConfigException e) { errors.AddRange(e.Errors); }
            if (value == "not-a-value") Assert.Contains(errors, e => e.Field == field);
            else Assert.DoesNotContain(errors, e => e.Field == field);
        }
    }

    [Fact]
    public async Task ATokenCountIsAnIntegerOrAStringOfTheFormsTheServiceTakes()
    {
        var doc = await Document();
        foreach (var (schema, property) in new[] { ("TrainingSpec", "tokenBudget"), ("TrainingSpec", "batchTokens"), ("TrainingSpec", "evalInterval"), ("EvaluationSpec", "interval") })
        {
            var forms = Schema(doc, schema)["properties"]![property]!["oneOf"]?.AsArray();
            Assert.True(forms is { Count: 2 }, $"{schema}.{property} is not oneOf an integer and a string: {Schema(doc, schema)["properties"]![property]}");
            Assert.Contains(forms, f => f!["type"]!.GetValue<string>() == "integer" && f["minimum"]!.GetValue<int>() == 0);
            var pattern = forms.Single(f => f!["type"]!.GetValue<string>() == "string")!["pattern"]!.GetValue<string>();
            foreach (var text in new[] { "200K", "1.5M", "2B", "10k", "1_000_000", "4194304", "1.5T" })
            {
                Assert.Matches(pattern, text);
                Assert.True(TokenCount.TryParse(text, out _), text);
            }
            foreach (var text in new[] { "200Q", "1e3K", "-5", "2 M", "K", "" })
            {
                Assert.DoesNotMatch(pattern, text);
                Assert.False(TokenCount.TryParse(text, out _), text);
            }
        }
        // The example's "200K" is the string form, and the service takes a spec with it (below: the example is submitted).
        var example = doc["paths"]!["/api/runs"]!["post"]!["requestBody"]!["content"]!["application/json"]!["example"]!;
        Assert.Equal("200K", example["training"]!["tokenBudget"]!.GetValue<string>());
    }

    [Fact]
    public async Task EveryOperationHasAnIdADescribedTagAnd4xxAnswersAndTheDocumentNamesItsServer()
    {
        var doc = await Document();
        var ops = Operations(doc).ToList();
        Assert.True(ops.Count >= 20, $"only {ops.Count} operations");
        var ids = ops.Select(o => o.Operation["operationId"]?.GetValue<string>()).ToList();
        Assert.DoesNotContain(null, ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        var tags = doc["tags"]!.AsArray().ToDictionary(t => t!["name"]!.GetValue<string>(), t => t!["description"]?.GetValue<string>());
        foreach (var (path, method, op) in ops)
        {
            foreach (var tag in op["tags"]!.AsArray()) Assert.False(string.IsNullOrEmpty(tags.GetValueOrDefault(tag!.GetValue<string>())), $"{method} {path}: tag {tag} has no description");
            Assert.Contains(op["responses"]!.AsObject(), r => r.Key.StartsWith('4'));
            if (op["requestBody"] is not null) Assert.True(op["responses"]!["413"] is not null, $"{method} {path}: no 413 for a body over 1 MiB");
            if (path.Contains('{')) Assert.True(op["responses"]!["404"] is not null, $"{method} {path}: no 404 for what its path names");
        }
        Assert.Equal(Tag(doc, "/api/runs/{id}/evaluations", "get"), Tag(doc, "/api/runs/{id}/evaluations", "post"));
        Assert.NotNull(doc["paths"]!["/api/runs/{id}"]!["get"]!["responses"]!["404"]);
        Assert.Equal(svc.Url, doc["servers"]![0]!["url"]!.GetValue<string>());
    }

    static string Tag(JsonNode doc, string path, string method) => doc["paths"]![path]![method]!["tags"]![0]!.GetValue<string>();

    [Fact]
    public async Task PadlocksAreOnExactlyTheRoutesThatNeedAKeyInTheRunningConfiguration()
    {
        // The fixture's service runs with the defaults: keys on, reads open.
        var doc = await Document();
        foreach (var (path, method, op) in Operations(doc))
        {
            var mutating = method != "get" || path.StartsWith("/api/keys", StringComparison.Ordinal);
            var security = op["security"]?.AsArray();
            Assert.True(mutating == security is { Count: > 0 }, $"{method} {path}: security {security?.ToJsonString() ?? "none"}");
            Assert.True(mutating == (op["responses"]!["401"] is not null && op["responses"]!["403"] is not null), $"{method} {path}: 401/403 documented iff a key is needed");
        }
        Assert.NotNull(doc["components"]!["securitySchemes"]!["ApiKey"]);

        // Reads that need a key, and no keys at all: the document of an API started with those settings.
        var others = await Task.WhenAll(DocumentOfAnApiWith(HcSettings.ReadsRequireKeySetting.Name), DocumentOfAnApiWith(HcSettings.AuthEnabledSetting.Name));
        var (locked, open) = (others[0], others[1]);
        foreach (var (path, method, op) in Operations(locked))
            Assert.True(op["security"]?.AsArray() is { Count: > 0 } && op["responses"]!["401"] is not null, $"{method} {path} has no padlock while reads need a key");
        foreach (var (path, method, op) in Operations(open))
            Assert.True(op["security"]?.AsArray() is not { Count: > 0 } && op["responses"]!["401"] is null, $"{method} {path} has a padlock while keys are off");
        Assert.Null(open["components"]!["securitySchemes"]?["ApiKey"]);
    }

    /// <summary>The OpenAPI document of a second API on the fixture's database, started as its own process (an API in
    /// this process would replace Hangfire's global configuration under the fixture's) with <paramref name="setting"/>
    /// flipped from its default: HC_AUTH_READS_REQUIRE_KEY to true, HC_AUTH_ENABLED to false.</summary>
    async Task<JsonNode> DocumentOfAnApiWith(string setting)
    {
        var url = $"http://127.0.0.1:{EmbeddedPostgres.FreePort()}";
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "HcService.Api.dll"));
        psi.Environment["ConnectionStrings__hc"] = svc.Postgres.ConnectionString;
        psi.Environment[HcSettings.DataRootSetting.Name] = svc.DataRoot;
        psi.Environment[HcSettings.CheckpointRootSetting.Name] = svc.CheckpointRoot;
        psi.Environment[HcSettings.ReadsRequireKeySetting.Name] = setting == HcSettings.ReadsRequireKeySetting.Name ? "true" : "false";
        psi.Environment[HcSettings.AuthEnabledSetting.Name] = setting == HcSettings.AuthEnabledSetting.Name ? "false" : "true";
        psi.Environment["ASPNETCORE_URLS"] = url;
        var log = new StringBuilder();
        using var api = Process.Start(psi)!;
        api.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        api.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        api.BeginOutputReadLine();
        api.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(url + "/") };
            var deadline = DateTime.UtcNow.AddMinutes(1);
            while (true)
            {
                try { return (await http.GetFromJsonAsync<JsonNode>("swagger/v1/swagger.json"))!; }
                catch (HttpRequestException) when (DateTime.UtcNow < deadline && !api.HasExited) { await Task.Delay(200); }
                catch (HttpRequestException e) { lock (log) throw new Xunit.Sdk.XunitException($"the API with {setting} changed did not answer ({e.Message}):\n{log}"); }
            }
        }
        finally
        {
            api.Kill(entireProcessTree: true);
            await api.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task TheJobSpecExampleIsASpecTheServiceAccepts()
    {
        var doc = await Document();
        var example = doc["paths"]!["/api/runs"]!["post"]!["requestBody"]!["content"]!["application/json"]!["example"]!;
        using var response = await svc.Http.PostAsync("api/runs", new StringContent(example.ToJsonString(), Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{body}\n{svc.ServerErrors}");
        var id = JsonNode.Parse(body)!["id"]!.GetValue<long>();
        using var cancel = await svc.Http.PostAsync($"api/runs/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
    }
}
