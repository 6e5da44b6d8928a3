using System.Text.Json.Nodes;
using HcService.Api.Auth;
using HcService.Api.Evaluations;
using HcService.Api.Runs;
using HcService.Contract.Config;
using HcService.Contract.Evaluation;
using HcService.Contract.Jobs;
using HcService.Store.Runs;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace HcService.Api.OpenApi;

/// <summary>
/// What reflection cannot see in the request and response types: the values a string field takes (as an enum, from the
/// same lists the validation uses), the fields a job spec requires, that a spec refuses unknown fields, that a token
/// count is an integer or a string like "200K", and that a task is a name or an object. Descriptions, defaults and
/// allowed ranges come from the XML comments of the contract (HcService.Contract) and of this project.
/// </summary>
sealed class SpecSchemas : ISchemaFilter
{
    static IEnumerable<string> Lower<T>() where T : struct, Enum => Enum.GetNames<T>().Select(n => n.ToLowerInvariant());

    /// <summary>The string fields that take one of a fixed set of values: (type, property) to the values.</summary>
    static readonly Dictionary<(Type, string), IReadOnlyList<string>> Enums = new()
    {
        [(typeof(JobSpec), "architecture")] = [.. Enum.GetValues<Architecture>().Select(Names.Of)],
        [(typeof(JobSpec), "task")] = JobPlan.Tasks,
        [(typeof(ModelSpec), "preset")] = [.. Presets.All.Keys],
        [(typeof(ConnectionSpec), "type")] = Names.Connections,
        [(typeof(ConnectionSpec), "mhcInit")] = Names.MhcInits,
        [(typeof(TrainingSpec), "schedule")] = [.. Lower<LrScheduleKind>()],
        [(typeof(TrainingSpec), "precision")] = [.. Lower<Precision>()],
        [(typeof(CreateApiKeyRequest), "scope")] = Scopes.All,
        [(typeof(ApiKeyInfo), "scope")] = Scopes.All,
        [(typeof(CreatedApiKey), "scope")] = Scopes.All,
        [(typeof(RunSummary), "status")] = RunStatus.All,
        [(typeof(RunSummary), "architecture")] = [.. Enum.GetValues<Architecture>().Select(Names.Of)],
        [(typeof(RunSummary), "connection")] = Names.Connections,
        [(typeof(AttemptInfo), "outcome")] = AttemptOutcome.All,
        [(typeof(EvaluationJobInfo), "status")] = EvaluationStatus.All,
    };

    /// <summary>The job spec's required fields, by the type that holds them (docs/design.md section 4.1).</summary>
    static readonly Dictionary<Type, string[]> Required = new()
    {
        [typeof(JobSpec)] = ["model", "architecture", "connection", "training"],
        [typeof(ModelSpec)] = ["preset"],
        [typeof(ConnectionSpec)] = ["type"],
        [typeof(EvaluationSpec)] = ["tasks"],
        [typeof(GroupRequest)] = ["name", "base", "variants"],
        [typeof(EvaluationRequest)] = ["tasks"],
        [typeof(CreateApiKeyRequest)] = ["name", "scope"],
    };

    /// <summary>The job spec's types: unknown fields are refused, and an absent field takes its default (so none is
    /// documented as null).</summary>
    static readonly HashSet<Type> SpecTypes =
        [typeof(JobSpec), typeof(ModelSpec), typeof(ModelOverrides), typeof(ConnectionSpec), typeof(MoeSpec), typeof(TrainingSpec), typeof(EvaluationSpec), typeof(DataSpec)];

    /// <summary>A token count (<see cref="TokenCount"/>): an integer, or a string with an optional suffix.</summary>
    public static IOpenApiSchema TokenCountSchema() => new OpenApiSchema
    {
        OneOf =
        [
            new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Minimum = "0", Description = "a non-negative integer: 200000" },
            new OpenApiSchema
            {
                Type = JsonSchemaType.String, Pattern = TokenCount.Pattern,
                Description = "digits with an optional decimal fraction and an optional suffix K = 1e3, M = 1e6, B = 1e9 or T = 1e12 (case-insensitive; '_' and ',' may group digits), a whole number of tokens: \"200K\", \"1.5M\", \"2B\"",
            },
        ],
    };

    public void Apply(IOpenApiSchema model, SchemaFilterContext context)
    {
        if (model is not OpenApiSchema schema) return;
        var type = context.Type;
        // XML comments keep their line breaks and indentation: one line each, as they read.
        schema.Description = OneLine(schema.Description);
        foreach (var property in (schema.Properties ?? new Dictionary<string, IOpenApiSchema>()).Values.OfType<OpenApiSchema>())
            property.Description = OneLine(property.Description);
        if (type == typeof(EvalTaskSpec)) { Task(schema); return; }
        if (type == typeof(GroupRequest)) Group(schema, context);
        if (Required.TryGetValue(type, out var required))
        {
            schema.Required = new HashSet<string>(required);
            foreach (var name in required)
                if (schema.Properties is not null && schema.Properties.TryGetValue(name, out var p) && p is OpenApiSchema { Type: { } t } property)
                    property.Type = t & ~JsonSchemaType.Null;
        }
        if (SpecTypes.Contains(type))
        {
            schema.AdditionalPropertiesAllowed = false;
            foreach (var property in (schema.Properties ?? new Dictionary<string, IOpenApiSchema>()).Values.OfType<OpenApiSchema>())
                if (property.Type is { } t) property.Type = t & ~JsonSchemaType.Null;
        }
        foreach (var (name, property) in schema.Properties ?? new Dictionary<string, IOpenApiSchema>())
            if (Enums.TryGetValue((type, name), out var values) && property is OpenApiSchema s)
                s.Enum = [.. values.Select(v => (JsonNode)JsonValue.Create(v))];
    }

    /// <summary>An XML comment's text on one line (the comments keep their line breaks and indentation).</summary>
    internal static string? OneLine(string? text) => text is null ? null : System.Text.RegularExpressions.Regex.Replace(text, @"\s*\n\s*", " ");

    /// <summary>A task is a known task's name, or {name, file, limit} (EvalTaskSpecJson reads both).</summary>
    static void Task(OpenApiSchema schema)
    {
        var properties = schema.Properties;
        schema.Type = null;
        schema.Properties = null;
        schema.Required = null;
        schema.AdditionalPropertiesAllowed = true;
        schema.OneOf =
        [
            new OpenApiSchema { Type = JsonSchemaType.String, Enum = [.. EvalTasks.Known.Keys.Select(k => (JsonNode)JsonValue.Create(k))], Description = "a known task, scored from its file under the data root" },
            new OpenApiSchema
            {
                Type = JsonSchemaType.Object, Properties = properties, Required = new HashSet<string> { "name" }, AdditionalPropertiesAllowed = false,
                Description = "a task by name with its own file (any name), or a known task with a limit of its own",
            },
        ];
    }

    /// <summary>A group's base is a job spec; its variants are parts of one, merged onto the base.</summary>
    static void Group(OpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema.Properties is null) return;
        schema.Properties["base"] = context.SchemaGenerator.GenerateSchema(typeof(JobSpec), context.SchemaRepository);
        schema.Properties["variants"] = new OpenApiSchema
        {
            Type = JsonSchemaType.Array, MinItems = 1, MaxItems = 32,
            Description = "1 to 32 objects, each merged onto a copy of base (objects field by field, recursively; anything else replaced): the fields of a job spec that differ",
            Items = new OpenApiSchema { Type = JsonSchemaType.Object, AdditionalProperties = new OpenApiSchema() },
        };
    }
}
