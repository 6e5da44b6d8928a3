using System.Text.Json.Nodes;
using HcService.Api.Auth;
using HcService.Contract.Jobs;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.ApiExplorer;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace HcService.Api.OpenApi;

/// <summary>
/// Per operation, what the endpoint's metadata says and reflection does not: its id, whether it needs a key (the padlock
/// and the 401 and 403 answers only where the running configuration requires one: HC_AUTH_ENABLED,
/// HC_AUTH_READS_REQUIRE_KEY), the 413 of a body over 1 MiB, the 400 that any route gives a path or query value with a
/// control character, and the values of the query parameters the API checks.
/// </summary>
sealed class OperationDocs : IOperationFilter
{
    /// <summary>The query parameters that take one of a fixed set of values (the route answers any other with a 400).</summary>
    static readonly Dictionary<string, IReadOnlyList<string>> QueryEnums = new()
    {
        ["status"] = HcService.Store.Runs.RunStatus.All,
        ["queue"] = [DeviceQueues.Cpu, DeviceQueues.Cuda],
        ["source"] = ["static", "dynamic"],
        ["from"] = ["start", "now"],
    };

    /// <summary>The route's name (<c>WithName</c>), else one made of the method and the path, so that every operation
    /// has an id: "get" + "/api/runs/{id}/metrics" gives "getApiRunsIdMetrics".</summary>
    public static string OperationId(ApiDescription api) =>
        api.ActionDescriptor.EndpointMetadata.OfType<IEndpointNameMetadata>().LastOrDefault()?.EndpointName
        ?? (api.HttpMethod ?? "any").ToLowerInvariant() + string.Concat((api.RelativePath ?? "").Split('/', '{', '}', '.', '-', ':')
            .Where(p => p.Length > 0).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        operation.Responses ??= [];
        var metadata = context.ApiDescription.ActionDescriptor.EndpointMetadata;
        // The route's WithSummary, not its handler's XML comment (written for the code's readers, over several lines).
        if (metadata.OfType<IEndpointSummaryMetadata>().LastOrDefault()?.Summary is { } summary) operation.Summary = summary;
        var policies = metadata.OfType<IAuthorizeData>().Select(a => a.Policy).OfType<string>().ToList();
        if (policies.Count > 0)
        {
            var scope = policies.MaxBy(Scopes.Level)!;
            operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(OpenApiSetup.SecurityScheme, context.Document)] = [] }];
            Problem(operation, context, "401", "No API key, a malformed one, or an unknown or revoked one: the title says which (An API key is required; The API key is malformed; The API key is unknown or revoked)");
            Problem(operation, context, "403", $"The API key's scope is below {scope} (scopes: read < submit < admin)");
            operation.Description = $"{operation.Description}{(operation.Description is null ? "" : " ")}Needs an API key with scope {scope}.".Trim();
        }
        else operation.Security = [];   // explicitly open: no padlock
        if (metadata.OfType<RequestBodyDoc>().LastOrDefault() is { } body)
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true, Description = body.Description,
                Content = body.Types.ToDictionary(t => t.ContentType, t => new OpenApiMediaType
                {
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = t.Binary ? "binary" : null, Description = t.Description },
                }),
            };
        if (operation.RequestBody is not null)
            Problem(operation, context, "413", metadata.OfType<Microsoft.AspNetCore.Http.Metadata.IRequestSizeLimitMetadata>().LastOrDefault()?.MaxRequestBodySize is { } max
                ? $"The request body is over {max >> 20} MiB (HC_UPLOAD_MAX_MIB)" : "The request body is over 1 MiB");
        if (!operation.Responses.Keys.Any(k => k.StartsWith('4') && k is not ("401" or "403" or "413")))
            Problem(operation, context, "400", "A path or query value with a control character, or a parameter that does not bind");
        foreach (var parameter in operation.Parameters ?? [])
        {
            if (parameter is OpenApiParameter { Description: { } text } p) p.Description = SpecSchemas.OneLine(text);
            if (parameter.In == ParameterLocation.Query && parameter.Name is { } name && QueryEnums.TryGetValue(name, out var values) && parameter.Schema is OpenApiSchema schema)
                schema.Enum = [.. values.Select(v => (JsonNode)JsonValue.Create(v))];
        }
    }

    static void Problem(OpenApiOperation operation, OperationFilterContext context, string status, string description)
    {
        if (operation.Responses!.ContainsKey(status)) return;
        operation.Responses[status] = new OpenApiResponse
        {
            Description = description,
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/problem+json"] = new() { Schema = context.SchemaGenerator.GenerateSchema(typeof(ProblemDetails), context.SchemaRepository) },
            },
        };
    }
}

/// <summary>A request body the endpoint reads itself (not bound from a type): its description and content types, for
/// the OpenAPI document only (routing does not match on it, so the handler answers other types with its own 415).</summary>
public sealed record RequestBodyDoc(string Description, IReadOnlyList<(string ContentType, string Description, bool Binary)> Types);
