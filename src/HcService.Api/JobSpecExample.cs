using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace HcService.Api;

/// <summary>Puts a job-spec example on POST /api/runs in the OpenAPI document (Swagger UI pre-fills it).</summary>
sealed class JobSpecExample : IOperationFilter
{
    public const string Json = """
        {
          "name": "tiny-dhc4",
          "model": { "preset": "tiny" },
          "architecture": "dense",
          "connection": { "type": "dynamic-hc", "rate": 4, "tanh": true },
          "training": { "tokenBudget": "200K", "seed": 1 },
          "tags": ["example"]
        }
        """;

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (context.ApiDescription.HttpMethod != "POST" || context.ApiDescription.RelativePath?.TrimEnd('/') != "api/runs") return;
        if (operation.RequestBody?.Content is { } content && content.TryGetValue("application/json", out var media))
            media.Example = JsonNode.Parse(Json);
    }
}
