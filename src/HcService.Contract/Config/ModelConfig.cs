namespace HcService.Contract.Config;

/// <summary>Normalisation used by every norm in the model (sublayer norms, final norm, DHC's stream norm).</summary>
public enum NormKind
{
    /// <summary>LayerNorm without affine parameters (OLMo dense).</summary>
    LayerNorm,
    /// <summary>RMSNorm with a learned weight (OLMoE).</summary>
    RmsNorm,
    /// <summary>LayerNorm with a learned weight and bias (ViT). The streams' norm inside dynamic HC and FC stays plain
    /// LayerNorm (<see cref="ModelConfig.StreamNorm"/>): a projection follows it, which an affine map would only repeat.</summary>
    AffineLayerNorm,
}

/// <summary>
/// An image classifier's input and output (ViT, Dosovitskiy et al. 2021): square images of <see cref="ImageSize"/> pixels
/// with <see cref="Channels"/> channels cut into (ImageSize / PatchSize)^2 patches, each linearly embedded; a class token
/// in front, learned position embeddings, and a linear head over <see cref="Classes"/> on the class token's final state.
/// </summary>
public sealed record VisionConfig
{
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 16;
    public int Channels { get; init; } = 3;
    public int Classes { get; init; } = 1000;

    /// <summary>Patches per image.</summary>
    public int Patches => ImageSize / PatchSize * (ImageSize / PatchSize);
    /// <summary>The sequence the transformer sees: the patches and the class token.</summary>
    public int SequenceLength => Patches + 1;
    /// <summary>Inputs of one patch's embedding: channels x patch x patch.</summary>
    public int PatchInputs => Channels * PatchSize * PatchSize;

    public IEnumerable<ConfigError> Validate(string path = "model")
    {
        if (ImageSize is < 1 or > 8192) yield return new($"{path}.imageSize", ImageSize, "an integer in [1, 8192]");
        if (PatchSize < 1 || PatchSize > ImageSize || ImageSize % Math.Max(PatchSize, 1) != 0)
            yield return new($"{path}.patchSize", PatchSize, $"a divisor of imageSize = {ImageSize}");
        if (Channels is < 1 or > 64) yield return new($"{path}.channels", Channels, "an integer in [1, 64]");
        if (Classes is < 2 or > 1_000_000) yield return new($"{path}.classes", Classes, "an integer in [2, 1000000]");
        if ((long)Channels * PatchSize * PatchSize > 1 << 20)
            yield return new($"{path}.patchSize", PatchSize, $"a patch of at most 2^20 inputs (channels x patch x patch; {Channels} x {PatchSize} x {PatchSize} is more)");
    }
}

/// <summary>Weight initialisation scheme.</summary>
public enum InitKind
{
    /// <summary>Every weight matrix and the embedding from N(0, initStd), truncated at 3 std.</summary>
    Normal,
    /// <summary>OLMo's "mitchell": inputs 1/sqrt(d), attention out 1/sqrt(2 d (layer+1)),
    /// MLP out 1/sqrt(2 hidden (layer+1)), truncated at 3 std (docs/hc-math.md section 4).</summary>
    Mitchell,
}

public enum Architecture { Dense, Moe }

/// <summary>How the sublayers are connected (docs/hc-math.md sections 3 and 5).</summary>
public enum ConnectionType
{
    /// <summary>Pre-Norm residual: h + T(norm(h)).</summary>
    Residual,
    /// <summary>Post-Norm residual: norm(h + T(h)).</summary>
    PostNorm,
    /// <summary>Static hyper-connections (eqs. 3-5).</summary>
    StaticHc,
    /// <summary>Dynamic hyper-connections (eqs. 10-13).</summary>
    DynamicHc,
    /// <summary>Frac-Connections: the hidden state split into m fractions, mixed like HC's streams (docs/hc-math.md section 11.1).</summary>
    Frac,
    /// <summary>Manifold-constrained HC: A_r projected onto doubly stochastic matrices by Sinkhorn-Knopp, sigmoid read and
    /// write weights (docs/hc-math.md section 11.2).</summary>
    Mhc,
    /// <summary>mHC-lite: A_r a convex combination of the n! permutation matrices (docs/hc-math.md section 11.3).</summary>
    MhcLite,
}

/// <summary>mHC's initial biases (docs/hc-math.md section 11.2).</summary>
public enum MhcInit
{
    /// <summary>A_r within 1e-3 of the identity and A_m of the one-hot at the home stream, B = 1: close to Pre-Norm residual.</summary>
    Identity,
    /// <summary>The biases of the public mhc-lite code: read and write +1 at home and -1 elsewhere, A_r logits 0 on the
    /// diagonal and -8 off it.</summary>
    Lite,
}

/// <summary>The connection between sublayers. Residual and Post-Norm use rate 1.</summary>
public sealed record ConnectionConfig
{
    public ConnectionType Type { get; init; } = ConnectionType.Residual;
    /// <summary>Expansion rate n: the number of residual streams (HC only; >= 1).</summary>
    public int Rate { get; init; } = 1;
    /// <summary>DHC only: apply tanh to the dynamic projections (the paper's default; off = the "w/o tanh" ablation).</summary>
    public bool Tanh { get; init; } = true;
    /// <summary>HC only: divide the init std of attention-out and MLP-out projections by sqrt(n) (paper section 4,
    /// docs/hc-math.md section 3.5). Off by default (null or false): the same seed then gives an HC run exactly its
    /// residual baseline's host weights, so that a comparison measures the connection alone.</summary>
    public bool? ScaleOutputInit { get; init; }
    /// <summary>Frac-Connections only: the fraction rate m (the hidden state split into m fractions of width d/m; m divides d).</summary>
    public int Fractions { get; init; } = 1;
    /// <summary>Frac-Connections only: weights from the normalised fractions (dynamic, as DHC) or static.</summary>
    public bool Dynamic { get; init; } = true;
    /// <summary>mHC and mHC-lite: the initial biases.</summary>
    public MhcInit MhcInit { get; init; } = MhcInit.Identity;
    /// <summary>mHC only: Sinkhorn-Knopp iterations (one row and one column normalisation each).</summary>
    public int SinkhornIterations { get; init; } = 20;

    /// <summary>The paper's static or dynamic HC.</summary>
    public bool IsHyper => Type is ConnectionType.StaticHc or ConnectionType.DynamicHc;
    /// <summary>mHC or mHC-lite.</summary>
    public bool IsManifold => Type is ConnectionType.Mhc or ConnectionType.MhcLite;
    public bool IsFrac => Type == ConnectionType.Frac;
    /// <summary>The trunk holds n copies of the hidden state, mixed by an n x n A_r per sublayer and summed at the end
    /// (HC, mHC, mHC-lite).</summary>
    public bool CopiesStreams => IsHyper || IsManifold;
    /// <summary>Rows of the trunk state: n streams, m fractions, or 1.</summary>
    public int StreamCount => CopiesStreams ? Rate : IsFrac ? Fractions : 1;
    public bool ScalesOutputInit => CopiesStreams && (ScaleOutputInit ?? false);

    public static ConnectionConfig Residual { get; } = new();
    public static ConnectionConfig StaticHc(int rate) => new() { Type = ConnectionType.StaticHc, Rate = rate };
    public static ConnectionConfig DynamicHc(int rate, bool tanh = true) => new() { Type = ConnectionType.DynamicHc, Rate = rate, Tanh = tanh };
    public static ConnectionConfig Frac(int fractions, bool dynamic = true) => new() { Type = ConnectionType.Frac, Fractions = fractions, Dynamic = dynamic };
    public static ConnectionConfig Mhc(int rate, MhcInit init = MhcInit.Identity) => new() { Type = ConnectionType.Mhc, Rate = rate, MhcInit = init };
    public static ConnectionConfig MhcLite(int rate, MhcInit init = MhcInit.Identity) => new() { Type = ConnectionType.MhcLite, Rate = rate, MhcInit = init };

    /// <summary>The short name used in tables and metric attributes, e.g. "dhc-x4", "shc-x2", "residual".</summary>
    public string Label => Type switch
    {
        ConnectionType.Residual => "residual",
        ConnectionType.PostNorm => "post-norm",
        ConnectionType.StaticHc => $"shc-x{Rate}",
        ConnectionType.DynamicHc => Tanh ? $"dhc-x{Rate}" : $"dhc-x{Rate}-notanh",
        ConnectionType.Frac => Dynamic ? (Tanh ? $"dfc-m{Fractions}" : $"dfc-m{Fractions}-notanh") : $"sfc-m{Fractions}",
        ConnectionType.Mhc => $"mhc-x{Rate}",
        _ => $"mhc-lite-x{Rate}",
    };

    /// <summary>The largest rate mHC-lite takes: its A_r mixes all n! permutation matrices (24 at n = 4).</summary>
    public const int MaxLiteRate = 4;
    public const int MaxSinkhornIterations = 1000;

    public IEnumerable<ConfigError> Validate(string path = "connection")
    {
        if (Rate is < 1 or > ModelConfig.MaxRate)
            yield return new($"{path}.rate", Rate, $"an integer in [1, {ModelConfig.MaxRate}]");
        else if (!CopiesStreams && Rate != 1)
            yield return new($"{path}.rate", Rate, $"1 for connection type '{Names.Of(Type)}' (only static-hc, dynamic-hc, mhc and mhc-lite expand streams{(IsFrac ? "; frac takes fractions" : "")})");
        else if (Type == ConnectionType.MhcLite && Rate > MaxLiteRate)
            yield return new($"{path}.rate", Rate, $"an integer in [1, {MaxLiteRate}] for mhc-lite (its A_r mixes the n! permutation matrices{(Rate <= 20 ? $": {Factorial(Rate):N0} at n = {Rate}" : "")})");
        if (Fractions is < 1 or > ModelConfig.MaxRate)
            yield return new($"{path}.fractions", Fractions, $"an integer in [1, {ModelConfig.MaxRate}]");
        else if (!IsFrac && Fractions != 1)
            yield return new($"{path}.fractions", Fractions, $"1 for connection type '{Names.Of(Type)}' (only frac splits the hidden state)");
        if (SinkhornIterations is < 1 or > MaxSinkhornIterations)
            yield return new($"{path}.sinkhornIterations", SinkhornIterations, $"an integer in [1, {MaxSinkhornIterations}]");
    }

    /// <summary>n! (n &lt;= 20).</summary>
    public static long Factorial(int n) { long f = 1; for (var i = 2; i <= n; i++) f *= i; return f; }
}

/// <summary>Mixture-of-Experts feed-forward, OLMoE style (dropless top-k).</summary>
public sealed record MoeConfig
{
    /// <summary>Number of experts E.</summary>
    public int Experts { get; init; } = 8;
    /// <summary>Experts each token is routed to.</summary>
    public int TopK { get; init; } = 2;
    /// <summary>SwiGLU hidden width of one expert.</summary>
    public int ExpertHidden { get; init; } = 256;
    /// <summary>Coefficient of the load-balancing loss (OLMoE: 0.01).</summary>
    public double LoadBalancingCoef { get; init; } = 0.01;
    /// <summary>Coefficient of the router z-loss (OLMoE: 0.001).</summary>
    public double RouterZLossCoef { get; init; } = 0.001;

    public IEnumerable<ConfigError> Validate(string path = "moe")
    {
        if (Experts is < 1 or > ModelConfig.MaxExperts) yield return new($"{path}.experts", Experts, $"an integer in [1, {ModelConfig.MaxExperts}]");
        if (TopK < 1 || TopK > Experts) yield return new($"{path}.topK", TopK, $"an integer in [1, experts = {Experts}]");
        if (ExpertHidden is < 1 or > ModelConfig.MaxHidden) yield return new($"{path}.expertHidden", ExpertHidden, $"an integer in [1, {ModelConfig.MaxHidden}]");
        if (LoadBalancingCoef < 0) yield return new($"{path}.loadBalancingCoef", LoadBalancingCoef, ">= 0");
        if (RouterZLossCoef < 0) yield return new($"{path}.routerZLossCoef", RouterZLossCoef, ">= 0");
    }
}

/// <summary>
/// Everything that fixes the shape and numerics of a model. Immutable; start from a preset
/// (<see cref="Presets"/>) and change fields with <c>with</c>.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Preset name this config came from (informational).</summary>
    public string Name { get; init; } = "custom";
    /// <summary>Transformer blocks L (each has two sublayers: attention and MLP).</summary>
    public int Layers { get; init; } = 2;
    /// <summary>Model width d.</summary>
    public int DModel { get; init; } = 64;
    /// <summary>Attention heads; d must be divisible by it.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>SwiGLU hidden width (the width after gating; the fused input projection is 2x this). Dense only.</summary>
    public int MlpHidden { get; init; } = 256;
    /// <summary>Maximum sequence length (RoPE tables are built for it).</summary>
    public int MaxSeqLen { get; init; } = 128;
    /// <summary>Real vocabulary size of the tokenizer.</summary>
    public int Vocab { get; init; } = 256;
    /// <summary>Rows of the embedding matrix (OLMo pads 50280 to 50304 for speed); >= Vocab.</summary>
    public int EmbeddingSize { get; init; } = 256;
    /// <summary>Share the embedding matrix with the output head.</summary>
    public bool TieEmbeddings { get; init; } = true;
    public NormKind Norm { get; init; } = NormKind.LayerNorm;
    /// <summary>Norm epsilon of every norm (0 makes the norms exactly scale invariant; tests use that).</summary>
    public double NormEps { get; init; } = 1e-5;
    /// <summary>Normalise queries and keys (over the full width, before splitting heads), as OLMoE does.</summary>
    public bool QkNorm { get; init; }
    public double RopeTheta { get; init; } = 10_000;
    /// <summary>Dropout on each sublayer's output and on the embedding (0 = off, OLMo's setting).</summary>
    public double Dropout { get; init; }
    public InitKind Init { get; init; } = InitKind.Normal;
    /// <summary>Std of <see cref="InitKind.Normal"/>.</summary>
    public double InitStd { get; init; } = 0.02;
    public Architecture Architecture { get; init; } = Architecture.Dense;
    /// <summary>MoE settings; used when <see cref="Architecture"/> is Moe.</summary>
    public MoeConfig Moe { get; init; } = new();
    public ConnectionConfig Connection { get; init; } = ConnectionConfig.Residual;
    /// <summary>Set for an image classifier (ViT): patches in, classes out; the blocks are ViT's (bidirectional attention
    /// without RoPE, a GELU MLP, biases, affine LayerNorm), wired by the same connections. Null for a language model.</summary>
    public VisionConfig? Vision { get; init; }

    public int HeadDim => DModel / Heads;
    public bool IsVision => Vision is not null;
    /// <summary>The norm of the streams inside dynamic HC and FC: the model's, with LayerNorm's affine map left out.</summary>
    public NormKind StreamNorm => Norm == NormKind.AffineLayerNorm ? NormKind.LayerNorm : Norm;
    public bool IsMoe => Architecture == Architecture.Moe;
    /// <summary>Sublayers with a connection each: 2 per block.</summary>
    public int Sublayers => 2 * Layers;

    public const int MaxLayers = 1024, MaxWidth = 65_536, MaxHidden = 1 << 20, MaxSequence = 1 << 20, MaxVocab = 1 << 24, MaxExperts = 1024, MaxRate = 64;

    public IReadOnlyList<ConfigError> Validate()
    {
        var errors = new List<ConfigError>();
        void Need(bool ok, string field, object value, string allowed) { if (!ok) errors.Add(new(field, value, allowed)); }
        // Upper bounds far beyond any trainable model (OLMo-7B: 32 layers, d = 4096), so that every size derived from
        // them (parameters, FLOPs, bytes) is computed in 64 bits without overflow.
        Need(Layers is >= 1 and <= MaxLayers, "model.layers", Layers, $"an integer in [1, {MaxLayers}]");
        Need(DModel is >= 1 and <= MaxWidth, "model.dModel", DModel, $"an integer in [1, {MaxWidth}]");
        Need(Heads >= 1 && DModel % Math.Max(Heads, 1) == 0, "model.heads", Heads, $"an integer >= 1 dividing dModel = {DModel}");
        Need(IsVision || Heads < 1 || DModel % Heads != 0 || HeadDim % 2 == 0, "model.heads", Heads, $"a head count giving an even head dimension (RoPE rotates pairs); dModel / heads = {(Heads > 0 ? DModel / Heads : 0)}");
        Need(IsMoe || MlpHidden is >= 1 and <= MaxHidden, "model.mlpHidden", MlpHidden, $"an integer in [1, {MaxHidden}]");
        Need(MaxSeqLen is >= 1 and <= MaxSequence, "model.maxSeqLen", MaxSeqLen, $"an integer in [1, {MaxSequence}]");
        Need(Vocab is >= 2 and <= MaxVocab, "model.vocab", Vocab, $"an integer in [2, {MaxVocab}]");
        Need(EmbeddingSize >= Vocab && EmbeddingSize <= MaxVocab, "model.embeddingSize", EmbeddingSize, $"an integer in [vocab = {Vocab}, {MaxVocab}]");
        Need(NormEps >= 0, "model.normEps", NormEps, ">= 0");
        Need(Dropout is >= 0 and < 1, "model.dropout", Dropout, "a number in [0, 1)");
        Need(InitStd > 0, "model.initStd", InitStd, "> 0");
        Need(RopeTheta > 0, "model.ropeTheta", RopeTheta, "> 0");
        if (IsMoe) errors.AddRange(Moe.Validate());
        if (Vision is not null)
        {
            errors.AddRange(Vision.Validate());
            Need(!IsMoe, "architecture", "moe", "dense for a vision model (ViT's MLP is a dense GELU MLP)");
            Need(!TieEmbeddings, "model.tieEmbeddings", TieEmbeddings, "false for a vision model (its head is a classifier, not an embedding)");
            Need(Vocab == Vision.Classes && EmbeddingSize == Vision.Classes, "model.vocab", Vocab,
                $"the classes of a vision model, vocab = embeddingSize = {Vision.Classes} (the head's rows)");
            Need(Vision.ImageSize < 1 || Vision.PatchSize < 1 || MaxSeqLen == Vision.SequenceLength, "model.maxSeqLen", MaxSeqLen,
                $"the patches and the class token of a vision model, (imageSize / patchSize)^2 + 1 = {(Vision.PatchSize > 0 ? Vision.SequenceLength : 0)}");
        }
        errors.AddRange(Connection.Validate());
        Need(!Connection.IsFrac || Connection.Fractions < 1 || DModel % Connection.Fractions == 0, "connection.fractions", Connection.Fractions,
            $"a divisor of dModel = {DModel} (each fraction is dModel / fractions wide)");
        return errors;
    }

    /// <summary>Throws <see cref="ConfigException"/> listing every invalid field.</summary>
    public ModelConfig EnsureValid()
    {
        var errors = Validate();
        if (errors.Count > 0) throw new ConfigException(errors);
        return this;
    }
}
