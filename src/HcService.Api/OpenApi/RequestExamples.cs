using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace HcService.Api.OpenApi;

/// <summary>An example for every request body (Swagger UI pre-fills it), by operation id. Each validates against its
/// schema: the test suite's `redocly lint` checks that (rule no-invalid-media-type-examples), and the service tests submit
/// them.</summary>
sealed class RequestExamples : IOperationFilter
{
    /// <summary>The job spec of docs/design.md section 4.11, shortened: POST /api/runs.</summary>
    public const string JobSpec = """
        {
          "name": "tiny-dhc4",
          "model": { "preset": "tiny" },
          "architecture": "dense",
          "connection": { "type": "dynamic-hc", "rate": 4, "tanh": true },
          "training": { "tokenBudget": "200K", "seed": 1, "evalInterval": "20K", "checkpointInterval": "50K" },
          "data": { "train": "corpus-bytes", "validation": ["valid-austen-bytes"] },
          "evaluation": { "tasks": ["arc_easy", { "name": "piqa", "limit": 20 }], "limit": 100 },
          "tags": ["example"]
        }
        """;

    /// <summary>The residual baseline and DHC at n = 2 and 4, each at three seeds: POST /api/groups.</summary>
    public const string Group = """
        {
          "name": "tiny-dhc-rates",
          "base": { "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "200K" } },
          "variants": [ { "connection": { "type": "dynamic-hc", "rate": 2 } }, { "connection": { "type": "dynamic-hc", "rate": 4 } } ],
          "seeds": [1, 2, 3]
        }
        """;

    /// <summary>POST /api/runs/{id}/evaluations.</summary>
    public const string Evaluation = """
        { "tasks": ["arc_easy", "piqa", { "name": "arc_easy_icl", "file": "eval/llm-foundry-icl/world_knowledge/arc_easy.jsonl" }], "limit": 100, "analysis": true }
        """;

    /// <summary>POST /api/keys.</summary>
    public const string Key = """{ "name": "ci", "scope": "submit" }""";

    static readonly Dictionary<string, string> ByOperation = new()
    {
        ["submitRun"] = JobSpec, ["createGroup"] = Group, ["submitEvaluation"] = Evaluation, ["createKey"] = Key,
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.OperationId is not { } id || !ByOperation.TryGetValue(id, out var json) || operation.RequestBody?.Content is not { } content) return;
        foreach (var media in content.Values) media.Example = JsonNode.Parse(json);
    }
}
