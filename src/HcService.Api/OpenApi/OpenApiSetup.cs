using HcService.Contract.Jobs;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace HcService.Api.OpenApi;

/// <summary>
/// The API reference: the OpenAPI document at /swagger/v1/swagger.json and Swagger UI at /swagger (docs/design.md
/// section 3.9). Every operation has an id, a tag with a description and its 4xx answers; the job spec's fields carry
/// their defaults and allowed values (the contract's XML comments), enums and required fields; the padlock is on the
/// routes that need a key in the running configuration. The test suite lints the document with Redocly CLI
/// (redocly.yaml): 0 errors, 0 warnings.
/// </summary>
public static class OpenApiSetup
{
    /// <summary>The security scheme's name: a bearer API key.</summary>
    public const string SecurityScheme = "ApiKey";

    /// <summary>Every tag the routes use, with what it holds, in the order Swagger UI shows them.</summary>
    public static readonly IReadOnlyList<(string Name, string Description)> Tags =
    [
        ("Runs", "Submit a job spec, list and inspect runs, cancel and retry them; their metrics, checkpoints and live event stream."),
        ("Evaluations", "Downstream zero-shot scores of a run's checkpoints (stored results and on-demand evaluation jobs) and the connection analysis of an evaluated checkpoint."),
        ("Comparisons", "Runs aligned by tokens: loss deltas, speedups and downstream deltas; by variant over seeds, the seed-paired deltas with 95% intervals and verdicts; the loss plot."),
        ("Experiment groups", "A grid of runs submitted as one call (a base spec, variants merged onto it, seeds) and its table in the paper's layout."),
        ("Catalog", "Model presets with parameter, FLOP and memory estimates; the datasets under the data root."),
        ("API keys", "Create, list and revoke API keys (admin scope). Keys are stored as SHA-256 only."),
    ];

    public static IServiceCollection AddHcOpenApi(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc("v1", new()
            {
                Title = "HcService API", Version = "v1",
                Description = "Pre-training runs comparing residual connections with hyper-connections: submit job specs, follow runs, evaluate checkpoints and compare variants. Errors are RFC 9457 problem details; invalid input is a 400 whose errors name each field, the value given and what is allowed.",
            });
            // The comments of every project whose types the API shows: this one and the contract (the job spec).
            foreach (var assembly in new[] { typeof(OpenApiSetup).Assembly, typeof(JobSpec).Assembly })
            {
                var xml = Path.Combine(AppContext.BaseDirectory, assembly.GetName().Name + ".xml");
                if (File.Exists(xml)) o.IncludeXmlComments(xml);
            }
            o.SupportNonNullableReferenceTypes();
            o.MapType<TokenCount>(SpecSchemas.TokenCountSchema);
            o.SchemaFilter<SpecSchemas>();
            o.CustomOperationIds(OperationDocs.OperationId);
            o.OperationFilter<OperationDocs>();
            o.OperationFilter<RequestExamples>();
            o.DocumentFilter<TagDescriptions>();
            // Swagger UI's Authorize button: paste a key once, every request then carries it.
            o.AddSecurityDefinition(SecurityScheme, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http, Scheme = "bearer",
                Description = "An HcService API key (`hc up` prints the first one; `hc keys create` makes more): sent as Authorization: Bearer <key>.",
            });
        });
        return services;
    }

    /// <summary>Serves the document, its server being the URL it was fetched from, and Swagger UI.</summary>
    public static void UseHcOpenApi(this WebApplication app)
    {
        app.UseSwagger(o => o.PreSerializeFilters.Add((document, request) =>
            document.Servers = [new OpenApiServer { Url = $"{request.Scheme}://{request.Host}{request.PathBase}", Description = "this service" }]));
        app.UseSwaggerUI(o => { o.RoutePrefix = "swagger"; o.EnablePersistAuthorization(); });
    }

    sealed class TagDescriptions : IDocumentFilter
    {
        public void Apply(OpenApiDocument document, DocumentFilterContext context)
        {
            document.Tags = new HashSet<OpenApiTag>(Tags.Select(t => new OpenApiTag { Name = t.Name, Description = t.Description }));
            // No route needs a key (HC_AUTH_ENABLED=false): no scheme either.
            if (document.Paths.Values.SelectMany(p => p.Operations?.Values.AsEnumerable() ?? []).All(op => op.Security is not { Count: > 0 }))
                document.Components?.SecuritySchemes?.Remove(SecurityScheme);
        }
    }
}
