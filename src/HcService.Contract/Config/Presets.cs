namespace HcService.Contract.Config;

/// <summary>
/// Named model presets. The paper's host models are the official OLMo / OLMoE configurations
/// (docs/design.md section 4.10); <c>tiny</c> and <c>small</c> are this project's CPU sizes.
/// </summary>
public static class Presets
{
    /// <summary>CI-sized: trains in seconds on 2 CPU cores; byte vocabulary.</summary>
    public static ModelConfig Tiny { get; } = new()
    {
        Name = "tiny",
        Layers = 2,          // 4 sublayers: enough to exercise sublayer-indexed init (k mod n) for n <= 4
        DModel = 64,
        Heads = 4,           // head dim 16
        MlpHidden = 176,     // ~8/3 d, rounded to a multiple of 16 (SwiGLU keeps params ~ a 4d GELU MLP)
        MaxSeqLen = 128,
        Vocab = 256,         // the `bytes` tokenizer: UTF-8 bytes
        EmbeddingSize = 256,
        TieEmbeddings = true,
        Norm = NormKind.LayerNorm,
        Init = InitKind.Normal,
        Moe = new() { Experts = 4, TopK = 2, ExpertHidden = 64 },
    };

    /// <summary>The CPU experiment size: ~14M parameters, body-dominated with the byte vocabulary.</summary>
    public static ModelConfig Small { get; } = new()
    {
        Name = "small",
        Layers = 8,
        DModel = 384,
        Heads = 6,           // head dim 64, as in the OLMo models
        MlpHidden = 1024,    // ~8/3 d
        MaxSeqLen = 256,
        Vocab = 256,         // bytes; override vocab/embeddingSize to 50280/50304 for the GPT-2 tokenizer
        EmbeddingSize = 256,
        TieEmbeddings = true,
        Norm = NormKind.LayerNorm,
        Init = InitKind.Mitchell,
        Moe = new() { Experts = 8, TopK = 2, ExpertHidden = 256 },
    };

    /// <summary>OLMo-1B (Groeneveld et al. 2024): 1,176,764,416 parameters.</summary>
    public static ModelConfig Olmo1B { get; } = new()
    {
        Name = "olmo-1b",
        Layers = 16,
        DModel = 2048,
        Heads = 16,
        MlpHidden = 8192,    // OLMo's mlp_hidden_size 16384 is the fused SwiGLU input projection (2 x 8192)
        MaxSeqLen = 2048,
        Vocab = 50280,       // GPT-NeoX-20B tokenizer (with PII tokens)
        EmbeddingSize = 50304, // padded to a multiple of 128
        TieEmbeddings = true,
        Norm = NormKind.LayerNorm, // "default" LayerNorm without affine parameters
        Init = InitKind.Mitchell,
        Moe = new() { Experts = 64, TopK = 8, ExpertHidden = 1024 },
    };

    /// <summary>OLMo-7B: 6,888,095,744 parameters.</summary>
    public static ModelConfig Olmo7B { get; } = new()
    {
        Name = "olmo-7b",
        Layers = 32,
        DModel = 4096,
        Heads = 32,
        MlpHidden = 11008,   // fused input projection 22016
        MaxSeqLen = 2048,
        Vocab = 50280,
        EmbeddingSize = 50304,
        TieEmbeddings = false,
        Norm = NormKind.LayerNorm,
        Init = InitKind.Mitchell,
        Moe = new() { Experts = 64, TopK = 8, ExpertHidden = 1024 },
    };

    /// <summary>OLMoE-1B-7B (Muennighoff et al. 2024): 6,919,094,272 parameters in the paper's count.</summary>
    public static ModelConfig Olmoe1B7B { get; } = new()
    {
        Name = "olmoe-1b-7b",
        Layers = 16,
        DModel = 2048,
        Heads = 16,
        MlpHidden = 1024,    // unused by MoE blocks; an expert's width is Moe.ExpertHidden
        MaxSeqLen = 4096,
        Vocab = 50280,
        EmbeddingSize = 50304,
        TieEmbeddings = false,
        Norm = NormKind.RmsNorm, // RMSNorm with weight, eps 1e-5
        QkNorm = true,           // RMSNorm over the full width of q and k
        Init = InitKind.Normal,  // std 0.02
        Architecture = Architecture.Moe,
        Moe = new() { Experts = 64, TopK = 8, ExpertHidden = 1024, LoadBalancingCoef = 0.01, RouterZLossCoef = 0.001 },
    };

    /// <summary>A ViT of the given shape (Dosovitskiy et al. 2021, Table 1): affine LayerNorm (eps 1e-6), a GELU MLP,
    /// biases, N(0, 0.02) init; the image size, patch size, channels and classes of <paramref name="vision"/>.</summary>
    static ModelConfig Vit(string name, int layers, int d, int heads, int mlp, VisionConfig vision) => new()
    {
        Name = name,
        Layers = layers,
        DModel = d,
        Heads = heads,
        MlpHidden = mlp,
        MaxSeqLen = vision.SequenceLength,
        Vocab = vision.Classes,
        EmbeddingSize = vision.Classes,
        TieEmbeddings = false,
        Norm = NormKind.AffineLayerNorm,
        NormEps = 1e-6,
        Init = InitKind.Normal,
        Vision = vision,
    };

    /// <summary>The CPU ViT: Fashion-MNIST's 28 x 28 grey images in 4 x 4 patches (49 and the class token), d = 64.</summary>
    public static ModelConfig VitTiny { get; } = Vit("vit-tiny", 4, 64, 4, 256, new() { ImageSize = 28, PatchSize = 4, Channels = 1, Classes = 10 });
    /// <summary>ViT-S/16 (DeiT-S's shape): 22,050,664 parameters at 224 px with 1000 classes.</summary>
    public static ModelConfig VitS16 { get; } = Vit("vit-s-16", 12, 384, 6, 1536, new()) with { Dropout = 0.1 };
    /// <summary>ViT-B/16: 86,567,656 parameters at 224 px with 1000 classes (the paper's 86.6M).</summary>
    public static ModelConfig VitB16 { get; } = Vit("vit-b-16", 12, 768, 12, 3072, new()) with { Dropout = 0.1 };
    /// <summary>ViT-L/16: 304,326,632 parameters at 224 px with 1000 classes (the paper's 304M).</summary>
    public static ModelConfig VitL16 { get; } = Vit("vit-l-16", 24, 1024, 16, 4096, new()) with { Dropout = 0.1 };

    public static IReadOnlyDictionary<string, ModelConfig> All { get; } = new Dictionary<string, ModelConfig>(StringComparer.OrdinalIgnoreCase)
    {
        ["tiny"] = Tiny,
        ["small"] = Small,
        ["olmo-1b"] = Olmo1B,
        ["olmo-7b"] = Olmo7B,
        ["olmoe-1b-7b"] = Olmoe1B7B,
        ["vit-tiny"] = VitTiny,
        ["vit-s-16"] = VitS16,
        ["vit-b-16"] = VitB16,
        ["vit-l-16"] = VitL16,
    };

    /// <summary>The training defaults each preset comes with (a spec's training fields override them).</summary>
    public static IReadOnlyDictionary<string, TrainingDefaults> Training { get; } = new Dictionary<string, TrainingDefaults>(StringComparer.OrdinalIgnoreCase)
    {
        ["tiny"] = new(Lr: 3e-3, BatchTokens: 8 * 128, MicroBatch: 8),
        ["small"] = new(Lr: 1e-3, BatchTokens: 16 * 256, MicroBatch: 8),
        ["olmo-1b"] = new(Lr: 4e-4, BatchTokens: 2048 * 2048, MicroBatch: 8),      // OLMo-1B: ~4M-token batches
        ["olmo-7b"] = new(Lr: 3e-4, BatchTokens: 2048 * 2048, MicroBatch: 4),
        ["olmoe-1b-7b"] = new(Lr: 4e-4, BatchTokens: 1024 * 4096, MicroBatch: 4),
    };

    /// <summary>The training defaults of <paramref name="preset"/> (for a model of <paramref name="seqLen"/> tokens per sequence).</summary>
    public static TrainingDefaults TrainingOf(string preset, int seqLen) =>
        Training.TryGetValue(preset, out var d) ? d : new(Lr: 4e-4, BatchTokens: 8L * seqLen, MicroBatch: 8);

    public static ModelConfig Get(string name) =>
        All.TryGetValue(name, out var c) ? c
        : throw new ConfigException([new("model.preset", name, "one of " + string.Join(", ", All.Keys))]);
}

/// <summary>Per-run changes to a preset (all optional). Applied by <see cref="Apply"/>.</summary>
public sealed record ModelOverrides
{
    /// <summary>Transformer blocks. Default: the preset's. Allowed: 1 to 1024 (an error names model.layers).</summary>
    public int? Layers { get; init; }
    /// <summary>Model width d. Default: the preset's. Allowed: 1 to 65536 (an error names model.dModel).</summary>
    public int? DModel { get; init; }
    /// <summary>Attention heads. Default: the preset's. Allowed: >= 1, a divisor of dModel, with dModel / heads even
    /// (rotary pairs) (an error names model.heads).</summary>
    public int? Heads { get; init; }
    /// <summary>Hidden width of the dense SwiGLU MLP. Default: the preset's. Allowed: 1 to 1048576, checked for dense
    /// models (an error names model.mlpHidden).</summary>
    public int? MlpHidden { get; init; }
    /// <summary>Maximum sequence length, which is also the training sequence length. Default: the preset's. Allowed: 1 to
    /// the preset's maximum.</summary>
    public int? MaxSeqLen { get; init; }
    /// <summary>Sets the tokenizer vocabulary; the embedding grows to at least this size. Default: the preset's. Allowed: 2
    /// to 16777216 (an error names model.vocab).</summary>
    public int? Vocab { get; init; }
    /// <summary>Embedding rows. Default: the preset's; with vocab overridden, the new vocab (tiny, small) or it rounded up to
    /// a multiple of 128 (the OLMo presets). Allowed: vocab to 16777216 (an error names model.embeddingSize).</summary>
    public int? EmbeddingSize { get; init; }
    /// <summary>MoE experts per layer (MoE only; the moe section wins). Default: the preset's. Allowed: 1 to 1024.</summary>
    public int? Experts { get; init; }
    /// <summary>MoE experts per token (MoE only; the moe section wins). Default: the preset's. Allowed: 1 to experts.</summary>
    public int? TopK { get; init; }
    /// <summary>MoE expert hidden width (MoE only; the moe section wins). Default: the preset's. Allowed: 1 to
    /// 1048576.</summary>
    public int? ExpertHidden { get; init; }
    /// <summary>Dropout probability. Default: 0. Allowed: 0 to below 1.</summary>
    public double? Dropout { get; init; }

    public ModelConfig Apply(ModelConfig c)
    {
        var vocab = Vocab ?? c.Vocab;
        return c with
        {
            Layers = Layers ?? c.Layers,
            DModel = DModel ?? c.DModel,
            Heads = Heads ?? c.Heads,
            MlpHidden = MlpHidden ?? c.MlpHidden,
            MaxSeqLen = MaxSeqLen ?? c.MaxSeqLen,
            Vocab = vocab,
            // A new vocabulary keeps the preset's padding habit: padded presets round up to a multiple of 128.
            EmbeddingSize = EmbeddingSize ?? (Vocab is null ? c.EmbeddingSize
                : c.EmbeddingSize == c.Vocab ? vocab : (vocab + 127) / 128 * 128),
            Dropout = Dropout ?? c.Dropout,
            Moe = c.Moe with
            {
                Experts = Experts ?? c.Moe.Experts,
                TopK = TopK ?? c.Moe.TopK,
                ExpertHidden = ExpertHidden ?? c.Moe.ExpertHidden,
            },
        };
    }
}

/// <summary>A preset's training defaults: peak learning rate, tokens per optimizer step, sequences per micro-batch.</summary>
public sealed record TrainingDefaults(double Lr, long BatchTokens, int MicroBatch);

/// <summary>A ViT preset's training defaults (the ViT recipe of the paper's Table 12, scaled down for vit-tiny): peak
/// learning rate, images per step and per micro-batch, weight decay, Mixup alpha, warmup steps (capped at a fifth of the
/// run); AdamW betas (0.9, 0.999), gradient clipping 1.0 and cosine decay are the same for all.</summary>
public sealed record VisionTrainingDefaults(double Lr, int BatchImages, int MicroBatch, double WeightDecay, double Mixup, int WarmupSteps)
{
    public static IReadOnlyDictionary<string, VisionTrainingDefaults> Of { get; } = new Dictionary<string, VisionTrainingDefaults>(StringComparer.OrdinalIgnoreCase)
    {
        ["vit-tiny"] = new(Lr: 2e-3, BatchImages: 128, MicroBatch: 128, WeightDecay: 0.05, Mixup: 0, WarmupSteps: 200),
        ["vit-s-16"] = new(Lr: 3e-3, BatchImages: 4096, MicroBatch: 64, WeightDecay: 0.3, Mixup: 0.2, WarmupSteps: 10_000),
        ["vit-b-16"] = new(Lr: 3e-3, BatchImages: 4096, MicroBatch: 64, WeightDecay: 0.3, Mixup: 0.2, WarmupSteps: 10_000),
        ["vit-l-16"] = new(Lr: 3e-3, BatchImages: 4096, MicroBatch: 32, WeightDecay: 0.3, Mixup: 0.2, WarmupSteps: 10_000),
    };

    /// <summary>The defaults of a vision preset; a custom one gets vit-tiny's.</summary>
    public static VisionTrainingDefaults For(string preset) => Of.TryGetValue(preset, out var d) ? d : Of["vit-tiny"];
}
