using System.Text.Json;
using System.Text.Json.Serialization;
using HcService.Contract.Config;

namespace HcService.Contract.Jobs;

/// <summary>
/// The job spec (docs/design.md section 4): what a researcher submits. Required: model preset, architecture, connection
/// type and token budget; everything else has a documented default, which the resolver (JobPlan) fills in. JSON,
/// camelCase, unknown fields rejected.
/// </summary>
public sealed record JobSpec
{
    /// <summary>A label for people. Default: the preset and the connection label, with "moe-" before the label for MoE
    /// (e.g. "tiny-dhc-x4", "olmoe-1b-7b-moe-shc-x2"). Allowed: 1 to 200 printable characters (no control, bidi-override
    /// or zero-width characters).</summary>
    public string? Name { get; init; }
    /// <summary>What the job trains: "language-modeling" (next-token prediction on a token dataset) or
    /// "image-classification" (a ViT preset on an image dataset, budgeted in images). Default: language-modeling.</summary>
    public string? Task { get; init; }
    /// <summary>The model: a preset and optional changes to it. Required (its preset is).</summary>
    public ModelSpec? Model { get; init; }
    /// <summary>The block's feed-forward: "dense" (one SwiGLU MLP) or "moe" (OLMoE-style routed experts); it overrides
    /// the preset's own architecture. Required; exact lower case.</summary>
    public string? Architecture { get; init; }
    /// <summary>How each sublayer's output joins the residual stream: residual, post-norm or a hyper-connection
    /// variant. Required (its type is).</summary>
    public ConnectionSpec? Connection { get; init; }
    /// <summary>MoE settings, applied after model.overrides and validated only when the architecture is "moe".
    /// Default: the preset's MoE settings.</summary>
    public MoeSpec? Moe { get; init; }
    /// <summary>Budget, batch, optimiser, schedule, precision, validation and checkpoint cadence. Required (its
    /// tokenBudget is); every other field has a per-preset default.</summary>
    public TrainingSpec? Training { get; init; }
    /// <summary>Datasets by name under the data root. Default: the corpus the repository ships, with the byte or GPT-2
    /// tokenisation that fits the model's vocabulary.</summary>
    public DataSpec? Data { get; init; }
    /// <summary>Downstream zero-shot evaluation during training. Default: absent, no downstream evaluation.</summary>
    public EvaluationSpec? Evaluation { get; init; }
    /// <summary>Labels for filtering (GET /api/runs?tag=...). Default: none. Allowed: at most 32, each 1 to 64 printable
    /// characters; through the API none may start with "group:" (reserved for groups).</summary>
    public List<string>? Tags { get; init; }

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        // A field given twice is a mistake (the last one would win silently), not a choice.
        AllowDuplicateProperties = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    /// <summary>Parses a spec; malformed JSON, a value of the wrong type or an unknown field becomes a
    /// <see cref="ConfigException"/> naming the path, and for JSON errors the line and column (1-based).</summary>
    /// <param name="positions">False when <paramref name="json"/> is not the text the user wrote (a group's merged
    /// spec): its line and column would point nowhere the user can look.</param>
    public static JobSpec Parse(string json, bool positions = true)
    {
        try
        {
            return JsonSerializer.Deserialize<JobSpec>(json, Json)
                ?? throw new ConfigException([new("$", "null", "a JSON object")]);
        }
        catch (JsonException e)
        {
            var path = string.IsNullOrEmpty(e.Path) ? "$" : e.Path;
            var field = path.TrimStart('$', '.') is { Length: > 0 } f ? f : "$";
            var message = e.Message;
            var at = (positions ? JsonErrors.Where(e, json) : null) is { } where ? $" at {where}" : "";
            if (message.Contains("could not be mapped", StringComparison.Ordinal))
                throw new ConfigException([new(field, "(unknown field)", "a field of the job spec (the JobSpec schema in /swagger lists them)")]);
            if (message.Contains("uplicate", StringComparison.Ordinal))
                throw new ConfigException([new(field, "(a field given twice)", "each field once: " + JsonErrors.Reason(e))]);
            if (e is InvalidTokenCountException t) throw new ConfigException([new(field, t.Given, TokenCount.Accepted)]);
            if (JsonErrors.ExpectedType(e) is { } type) throw new ConfigException([new(field, $"(a value of another type{at})", type)]);
            throw new ConfigException([new(field, $"(invalid JSON{at})", "well-formed JSON: " + JsonErrors.Reason(e))]);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

/// <summary>The model: a preset, with optional changes to its sizes.</summary>
public sealed record ModelSpec
{
    /// <summary>The preset: tiny, small, olmo-1b, olmo-7b or olmoe-1b-7b (case-insensitive). Required. It fixes the
    /// shape, the norm, the init and the training defaults (docs/design.md section 4.10).</summary>
    public string? Preset { get; init; }
    /// <summary>Changes to the preset's sizes. Default: none, the preset as it is.</summary>
    public ModelOverrides? Overrides { get; init; }
}

/// <summary>The connection: residual, post-norm, or a hyper-connection variant with its settings.</summary>
public sealed record ConnectionSpec
{
    /// <summary>residual (Pre-Norm), post-norm, static-hc, dynamic-hc, frac (Frac-Connections), mhc (Sinkhorn-projected)
    /// or mhc-lite (case-insensitive). Required.</summary>
    public string? Type { get; init; }
    /// <summary>Expansion rate n (streams). Default: 4 for static-hc, dynamic-hc, mhc and mhc-lite; 1 otherwise. Allowed:
    /// 1 to 64; 1 to 4 for mhc-lite; exactly 1 for residual, post-norm and frac.</summary>
    public int? Rate { get; init; }
    /// <summary>Frac-Connections only: the fraction count m. Default: 4 for frac. Allowed: 1 to 64 and a divisor of the
    /// model width; absent for every other type.</summary>
    public int? Fractions { get; init; }
    /// <summary>Frac-Connections only: weights from the normalised fractions (true) or static (false). Default: true;
    /// absent for every other type.</summary>
    public bool? Dynamic { get; init; }
    /// <summary>mhc and mhc-lite only: "identity" (close to residual at init) or "lite" (the public mhc-lite biases).
    /// Default: identity; absent for every other type.</summary>
    public string? MhcInit { get; init; }
    /// <summary>mhc only: Sinkhorn-Knopp iterations. Default: 20. Allowed: 1 to 1000; absent for every other type.</summary>
    public int? SinkhornIterations { get; init; }
    /// <summary>tanh on the dynamic projections (dynamic-hc and dynamic frac); false is the paper's "w/o tanh" ablation.
    /// Default: true.</summary>
    public bool? Tanh { get; init; }
    /// <summary>static-hc, dynamic-hc, mhc and mhc-lite (ignored otherwise): divide the init std of the attention and MLP
    /// output projections by sqrt(n), the paper's rescaling; a comparison with it is marked confounded. Default: false
    /// (an HC run starts from its residual baseline's weights).</summary>
    public bool? ScaleOutputInit { get; init; }
}

/// <summary>MoE settings (architecture "moe"): applied after model.overrides, so they win where both set a value.</summary>
public sealed record MoeSpec
{
    /// <summary>Experts per MoE layer. Default: the preset's (tiny 4, small 8, OLMo presets 64). Allowed: 1 to 1024.</summary>
    public int? Experts { get; init; }
    /// <summary>Experts each token is routed to. Default: the preset's (tiny 2, small 2, OLMo presets 8). Allowed: 1 to
    /// experts.</summary>
    public int? TopK { get; init; }
    /// <summary>Hidden width of each expert's MLP. Default: the preset's (tiny 64, small 256, OLMo presets 1024).
    /// Allowed: 1 to 1048576.</summary>
    public int? ExpertHidden { get; init; }
    /// <summary>Coefficient of the load-balancing loss. Default: 0.01. Allowed: >= 0.</summary>
    public double? LoadBalancingCoef { get; init; }
    /// <summary>Coefficient of the router z-loss. Default: 0.001. Allowed: >= 0.</summary>
    public double? RouterZLossCoef { get; init; }
}

/// <summary>Budget, batch, optimiser, schedule, precision and cadences; every field but tokenBudget has a default.</summary>
public sealed record TrainingSpec
{
    /// <summary>Total training tokens; it fixes the steps (floor(budget / batchTokens); the remainder is not trained).
    /// Default: none; required for language-modeling, absent for image-classification (imageBudget). Allowed: at least one step (>=
    /// batchTokens) and at most 100T.</summary>
    public TokenCount? TokenBudget { get; init; }
    /// <summary>image-classification only (instead of tokenBudget): images seen in training, with repeats (60,000 is one
    /// epoch of Fashion-MNIST); "60K" forms accepted. Default: none; required for image-classification, absent for
    /// language-modeling. Allowed: at least one step (>= batchImages) and at most 1T.</summary>
    public TokenCount? ImageBudget { get; init; }
    /// <summary>image-classification only (instead of batchTokens): images per optimiser step. Default: the preset's
    /// (vit-tiny 128; the ViT paper's 4,096 for vit-s-16, vit-b-16, vit-l-16). Allowed: a positive multiple of
    /// microBatch.</summary>
    public int? BatchImages { get; init; }
    /// <summary>image-classification only: Mixup's alpha (each batch mixed with itself reversed by a Beta(alpha, alpha)
    /// weight); 0 turns it off. Default: the preset's (0 for vit-tiny, the paper's 0.2 otherwise). Allowed: 0 to 10.</summary>
    public double? Mixup { get; init; }
    /// <summary>Tokens per optimiser step. Default: the preset's (tiny 1,024; small 4,096; OLMo presets 4,194,304) rounded
    /// down to a multiple of microBatch x sequence length. Allowed: a positive multiple of microBatch x sequence
    /// length.</summary>
    public TokenCount? BatchTokens { get; init; }
    /// <summary>Sequences (images for image-classification: vit-tiny 128, vit-s-16 and vit-b-16 64, vit-l-16 32) per
    /// forward/backward pass (gradient accumulation makes up the batch). Default: the preset's
    /// (tiny, small, olmo-1b 8; olmo-7b, olmoe-1b-7b 4). Allowed: >= 1, and through the API small enough for the
    /// device's memory.</summary>
    public int? MicroBatch { get; init; }
    /// <summary>Peak learning rate. Default: the preset's (tiny 3e-3, small 1e-3, olmo-1b 4e-4, olmo-7b 3e-4, olmoe-1b-7b
    /// 4e-4). Allowed: in (0, 1).</summary>
    public double? Lr { get; init; }
    /// <summary>Learning-rate schedule after warmup: cosine, linear or constant (exact). Default: cosine.</summary>
    public string? Schedule { get; init; }
    /// <summary>Linear warmup steps. Default: min(2000, max(1, ceil(steps / 10))). Allowed: 0 to steps.</summary>
    public int? WarmupSteps { get; init; }
    /// <summary>Final learning rate as a fraction of the peak. Default: 0.1. Allowed: 0 to 1.</summary>
    public double? MinLrRatio { get; init; }
    /// <summary>AdamW weight decay, applied to the decay group only. Default: 0.1. Allowed: >= 0.</summary>
    public double? WeightDecay { get; init; }
    /// <summary>Maximum global gradient norm. Default: 1.0. Allowed: >= 0; 0 disables clipping.</summary>
    public double? GradClip { get; init; }
    /// <summary>fp32 or bf16 (mixed precision with fp32 master weights). Default: bf16 on the cuda queue, fp32 on cpu.
    /// bf16 is refused on a CPU worker.</summary>
    public string? Precision { get; init; }
    /// <summary>Seed of the init and the data order (64-bit). Default: 1. Any integer; runs with equal seeds pair
    /// in comparisons.</summary>
    public long? Seed { get; init; }
    /// <summary>Validate every this many tokens (images for image-classification), and at step 0 and the last step.
    /// Default: budget / 10. Allowed: >= one step.</summary>
    public TokenCount? EvalInterval { get; init; }
    /// <summary>Tokens of each validation set scored (fixed windows from its start). Default: 65,536 (64K). Allowed: >= one
    /// sequence.</summary>
    public TokenCount? EvalTokens { get; init; }
    /// <summary>Checkpoint every this many tokens (images for image-classification), and at the last step. Default:
    /// budget / 5. Allowed: >= one step.</summary>
    public TokenCount? CheckpointInterval { get; init; }
    /// <summary>Checkpoints kept on disk, the newest. Default: 3. Allowed: >= 1.</summary>
    public int? CheckpointsToKeep { get; init; }
    /// <summary>What backward recomputes instead of keeping from the forward pass: none; hc (each connection keeps only
    /// its input streams and recomputes its input-dependent weights: the norm and projection of dynamic HC, FC, mHC,
    /// mHC-lite); block (each block keeps only its input and is run again in backward: activation checkpointing). The
    /// same computation either way (bitwise on the same kernels); less activation memory for more compute. Default: none.
    /// block is refused
    /// with moe (the router's auxiliary losses) and with dropout on cuda.</summary>
    public string? Recompute { get; init; }
}

/// <summary>In-loop downstream evaluation: tasks scored every <see cref="Interval"/> tokens and at the end.</summary>
public sealed record EvaluationSpec
{
    /// <summary>1 to 64 tasks with distinct names (none named "average"): known task names (arc_easy, arc_challenge,
    /// hellaswag, piqa, sciq, openbookqa, copa, winogrande, boolq, mmlu) or {"name", "file", "limit"} with a file under the
    /// data root. Required when evaluation is given.</summary>
    public List<HcService.Contract.Evaluation.EvalTaskSpec>? Tasks { get; init; }
    /// <summary>Items per task (the first N in file order). Default: all items. Allowed: 1 to 1000000.</summary>
    public int? Limit { get; init; }
    /// <summary>Evaluate every this many tokens, and always at the last step. Default: the whole budget, only at the end.
    /// Allowed: >= batchTokens.</summary>
    public TokenCount? Interval { get; init; }
    /// <summary>Requests per forward pass. Default: 16. Allowed: 1 to 1024.</summary>
    public int? BatchSize { get; init; }
}

/// <summary>Datasets by name: folders directly under the data root that hold a manifest.json.</summary>
public sealed record DataSpec
{
    /// <summary>The training dataset. Default: corpus-bytes when the model's vocabulary is below 50257, else corpus-gpt2.
    /// Allowed: a dataset under the data root (GET /api/datasets lists them) tokenised for the model's vocabulary.</summary>
    public string? Train { get; init; }
    /// <summary>Validation datasets, each reported as val/&lt;name&gt;/loss. Default: when train is named, a tail held out of
    /// it (evalTokens rounded down to whole sequences, at most a tenth of the dataset, never read by training), reported
    /// as val/&lt;train&gt;.heldout/loss; else valid-austen-* and valid-wikitext-* of the training data's tokenizer.
    /// Allowed: dataset names under the data root; an empty list means no validation.</summary>
    public List<string>? Validation { get; init; }
}
