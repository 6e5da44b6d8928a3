using System.Text.Json;
using System.Text.Json.Serialization;
using HcService.Contract.Config;

namespace HcService.Contract.Jobs;

/// <summary>
/// The job spec (docs/design.md section 4): what a researcher submits. Required: model preset, architecture, connection
/// type and token budget; everything else has a documented default (see <see cref="JobPlan"/>). JSON, camelCase,
/// unknown fields rejected.
/// </summary>
public sealed record JobSpec
{
    /// <summary>A label for people; defaults to the preset and the connection, e.g. "tiny-dhc-x4" or "small-moe-residual".</summary>
    public string? Name { get; init; }
    public ModelSpec? Model { get; init; }
    /// <summary>"dense" or "moe".</summary>
    public string? Architecture { get; init; }
    public ConnectionSpec? Connection { get; init; }
    /// <summary>MoE settings (architecture "moe"); defaults from the preset.</summary>
    public MoeSpec? Moe { get; init; }
    public TrainingSpec? Training { get; init; }
    /// <summary>Datasets by name under the data root; omitted: the corpus the repository ships.</summary>
    public DataSpec? Data { get; init; }
    /// <summary>Downstream zero-shot evaluation during training (null: none).</summary>
    public EvaluationSpec? Evaluation { get; init; }
    public List<string>? Tags { get; init; }

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        // A field given twice is a mistake (the last one would win silently), not a choice.
        AllowDuplicateProperties = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    /// <summary>Parses a spec; malformed JSON or unknown fields become a <see cref="ConfigException"/> naming the path.</summary>
    public static JobSpec Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<JobSpec>(json, Json)
                ?? throw new ConfigException([new("$", "null", "a JSON object")]);
        }
        catch (JsonException e)
        {
            var path = string.IsNullOrEmpty(e.Path) ? "$" : e.Path;
            var message = e.Message;
            if (message.Contains("could not be mapped", StringComparison.Ordinal))
                throw new ConfigException([new(path.TrimStart('$', '.'), "(unknown field)", "a field of the job spec (the JobSpec schema in /swagger lists them)")]);
            if (message.Contains("uplicate", StringComparison.Ordinal))
                throw new ConfigException([new(path.TrimStart('$', '.') is { Length: > 0 } d ? d : "$", "(a field given twice)", "each field once: " + message)]);
            throw new ConfigException([new(path.TrimStart('$', '.') is { Length: > 0 } p ? p : "$", "(invalid JSON)", message)]);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

public sealed record ModelSpec
{
    /// <summary>tiny | small | olmo-1b | olmo-7b | olmoe-1b-7b</summary>
    public string? Preset { get; init; }
    public ModelOverrides? Overrides { get; init; }
}

public sealed record ConnectionSpec
{
    /// <summary>residual | post-norm | static-hc | dynamic-hc | frac | mhc | mhc-lite</summary>
    public string? Type { get; init; }
    /// <summary>Expansion rate n (HC, mHC, mHC-lite; default 4 for them, 1 otherwise; mhc-lite at most 4).</summary>
    public int? Rate { get; init; }
    /// <summary>Frac-Connections: fraction rate m, a divisor of the model width (default 4).</summary>
    public int? Fractions { get; init; }
    /// <summary>Frac-Connections: dynamic weights (default true) or static.</summary>
    public bool? Dynamic { get; init; }
    /// <summary>mHC and mHC-lite: identity (default: close to residual at init) | lite (the public mhc-lite biases).</summary>
    public string? MhcInit { get; init; }
    /// <summary>mHC: Sinkhorn-Knopp iterations (default 20).</summary>
    public int? SinkhornIterations { get; init; }
    /// <summary>DHC: tanh on the dynamic projections (default true).</summary>
    public bool? Tanh { get; init; }
    /// <summary>HC: divide output-projection init std by sqrt(n) (default false: an HC run starts from its baseline's weights).</summary>
    public bool? ScaleOutputInit { get; init; }
}

public sealed record MoeSpec
{
    public int? Experts { get; init; }
    public int? TopK { get; init; }
    public int? ExpertHidden { get; init; }
    public double? LoadBalancingCoef { get; init; }
    public double? RouterZLossCoef { get; init; }
}

public sealed record TrainingSpec
{
    /// <summary>Total training tokens: integer or "500B" / "2M". Fixes the number of steps.</summary>
    public TokenCount? TokenBudget { get; init; }
    /// <summary>Tokens per optimizer step (default per preset); a multiple of microBatch x sequence length.</summary>
    public TokenCount? BatchTokens { get; init; }
    /// <summary>Sequences per forward/backward (gradient accumulation makes up the batch).</summary>
    public int? MicroBatch { get; init; }
    /// <summary>Peak learning rate (default per preset; OLMo-1B: 4e-4).</summary>
    public double? Lr { get; init; }
    /// <summary>cosine | linear | constant (default cosine).</summary>
    public string? Schedule { get; init; }
    /// <summary>Linear warmup steps (default min(2000, 10% of steps)).</summary>
    public int? WarmupSteps { get; init; }
    /// <summary>Final lr as a fraction of the peak (default 0.1).</summary>
    public double? MinLrRatio { get; init; }
    public double? WeightDecay { get; init; }
    /// <summary>Max global gradient norm (default 1.0; 0 disables).</summary>
    public double? GradClip { get; init; }
    /// <summary>fp32 | bf16 (default: bf16 on CUDA, fp32 on CPU).</summary>
    public string? Precision { get; init; }
    public long? Seed { get; init; }
    /// <summary>Validate every this many tokens (default budget / 10) and at the end.</summary>
    public TokenCount? EvalInterval { get; init; }
    /// <summary>Tokens of each validation set evaluated (fixed windows from its start; default 64K).</summary>
    public TokenCount? EvalTokens { get; init; }
    /// <summary>Checkpoint every this many tokens (default budget / 5) and at the end.</summary>
    public TokenCount? CheckpointInterval { get; init; }
    /// <summary>Checkpoints kept on disk (default 3; the newest are kept).</summary>
    public int? CheckpointsToKeep { get; init; }
}

/// <summary>In-loop downstream evaluation: tasks scored every <see cref="Interval"/> tokens and at the end.</summary>
public sealed record EvaluationSpec
{
    /// <summary>Known task names ("arc_easy", "hellaswag", ...) or {"name", "file", "limit"} with a file under the data root.</summary>
    public List<HcService.Contract.Evaluation.EvalTaskSpec>? Tasks { get; init; }
    /// <summary>Items per task (the first N; default all). Quick in-loop evaluations use 100-500.</summary>
    public int? Limit { get; init; }
    /// <summary>Evaluate every this many tokens (default: only at the end).</summary>
    public TokenCount? Interval { get; init; }
    /// <summary>Requests per forward pass (default 16).</summary>
    public int? BatchSize { get; init; }
}

public sealed record DataSpec
{
    /// <summary>Training dataset name under the data root.</summary>
    public string? Train { get; init; }
    /// <summary>Validation dataset names under the data root.</summary>
    public List<string>? Validation { get; init; }
}
