using HcService.Contract.Config;
using HcService.Core.Connections;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Model;

// Axes: B batch, T time, N streams, D width, V vocabulary (embedding rows).

/// <summary>The result of one forward pass.</summary>
/// <param name="Logits">[B, T, V]</param>
/// <param name="Hidden">The trunk after reducing the streams, before the final norm: [B, T, D].</param>
/// <param name="Moe">One entry per MoE layer (empty for dense models).</param>
public sealed record ModelOutput(Tensor Logits, Tensor Hidden, IReadOnlyList<MoeStats> Moe);

/// <summary>
/// Decoder-only language model, OLMo style (docs/hc-math.md section 2.1):
///   h0 = Embedding(tokens); H = Expand(h0); H = block_l(H) for each block; h = Reduce(H); logits = Head(norm(h)).
/// With residual connections Expand and Reduce are the identity and this is OLMo's Pre-Norm transformer.
///
/// With <see cref="ModelConfig.Vision"/> the same trunk is a ViT (Dosovitskiy et al. 2021; docs/hc-math.md section 12):
///   h0 = [cls ; Linear(patches(image))] + positions; the same blocks and connections; logits = Head(norm(h)[class token]).
/// </summary>
public sealed class LanguageModel : nn.Module
{
    readonly Embedding? wte;            // language: token embedding
    readonly Linear? patch_embed;       // vision: C p p -> D, with bias (a p-strided convolution)
#pragma warning disable IDE0044 // fields are rebound by Module.to()
    Parameter? cls_token;               // vision: [1, 1, D]
    Parameter? pos_embed;               // vision: [1, S, D], S = patches + 1
#pragma warning restore IDE0044
    readonly ModuleList<Block> blocks;
    readonly Norm ln_f;
    readonly Linear? lm_head;   // null when tied to wte; the classifier of a ViT (with bias)

    public ModelConfig Config { get; }

    public LanguageModel(ModelConfig config) : base("model")
    {
        Config = config.EnsureValid();
        if (config.Vision is { } v)
        {
            patch_embed = nn.Linear(v.PatchInputs, config.DModel, hasBias: true);
            cls_token = new Parameter(zeros(1, 1, config.DModel));
            pos_embed = new Parameter(zeros(1, v.SequenceLength, config.DModel));
        }
        else wte = nn.Embedding(config.EmbeddingSize, config.DModel);
        blocks = new ModuleList<Block>([.. Enumerable.Range(0, config.Layers).Select(l => new Block($"{l}", config, l))]);
        ln_f = new Norm("ln_f", config.DModel, config.Norm, config.NormEps);
        if (!config.TieEmbeddings) lm_head = nn.Linear(config.DModel, config.EmbeddingSize, hasBias: config.IsVision);
        RegisterComponents();
        Initializer.Apply(this);
    }

    internal Embedding? Embedding => wte;
    internal Linear? PatchEmbedding => patch_embed;
    internal (Parameter ClassToken, Parameter Positions)? VisionEmbeddings => cls_token is null ? null : (cls_token, pos_embed!);
    internal Linear? Head => lm_head;
    public IList<Block> Blocks => blocks;

    /// <summary>What backward recomputes instead of keeping (training.recompute): none, hc or block. Not part of the
    /// model's state: a checkpoint trains on with any of them.</summary>
    public HcService.Contract.Jobs.RecomputeMode Recompute
    {
        get => recompute;
        set
        {
            recompute = value;
            foreach (var b in blocks) b.Recompute = value;
        }
    }
    HcService.Contract.Jobs.RecomputeMode recompute;

    /// <summary>Which implementation the stream-mixing connections run (Auto: the fused CPU kernels where they apply).</summary>
    public HcService.Core.Native.ConnectionKernels ConnectionKernels
    {
        get => kernels;
        set
        {
            kernels = value;
            foreach (var c in Connections.OfType<IStreamMixing>()) c.Kernels = value;
        }
    }
    HcService.Core.Native.ConnectionKernels kernels;

    /// <summary>The connection of every sublayer, in sublayer order k = 0 .. 2L-1.</summary>
    public IEnumerable<IConnection> Connections => blocks.SelectMany(b => new[] { b.AttnConnection, b.MlpConnection });

    /// <param name="tokens_BT">Token ids [B, T]; for a ViT, images [B, C, H, W] (float, normalised).</param>
    public ModelOutput Forward(Tensor tokens_BT)
    {
        if (Config.Vision is not null) return Classify(tokens_BT);
        if (tokens_BT.shape[1] > Config.MaxSeqLen)
            throw new ArgumentException($"sequence length {tokens_BT.shape[1]} exceeds the model's maxSeqLen {Config.MaxSeqLen}");
        using var scope = NewDisposeScope();
        var (hidden_BTD, moe) = Trunk(Embed(tokens_BT), scope);
        var x_BTD = ln_f.forward(hidden_BTD);
        var logits_BTV = lm_head is null ? x_BTD.matmul(wte!.weight!.t()) : lm_head.forward(x_BTD);
        foreach (var s in moe) scope.MoveToOuter(s.LoadBalancingLoss, s.RouterZLoss);   // into the caller's scope
        return new(logits_BTV.MoveToOuterDisposeScope(), hidden_BTD.MoveToOuterDisposeScope(), moe);
    }

    /// <summary>A ViT's forward: the embedded patches and class token through the trunk, and the head on the class
    /// token's final state. Logits [B, classes]; Hidden [B, S, D].</summary>
    ModelOutput Classify(Tensor images_BCHW)
    {
        using var scope = NewDisposeScope();
        var (hidden_BSD, moe) = Trunk(Embed(images_BCHW), scope);
        var logits_BK = lm_head!.forward(ln_f.forward(hidden_BSD.select(1, 0)));
        return new(logits_BK.MoveToOuterDisposeScope(), hidden_BSD.MoveToOuterDisposeScope(), moe);
    }

    /// <summary>The sequence the trunk starts from, [B, T, D]: token embeddings; for a ViT the patches [B, P, C p p]
    /// linearly embedded, the class token in front and the position embeddings added.</summary>
    public Tensor Embed(Tensor input)
    {
        if (Config.Vision is not { } v) return wte!.forward(input);
        if (input.dim() != 4 || input.shape[1] != v.Channels || input.shape[2] != v.ImageSize || input.shape[3] != v.ImageSize)
            throw new ArgumentException($"images of shape [batch, {v.Channels}, {v.ImageSize}, {v.ImageSize}] expected, got [{string.Join(", ", input.shape)}]");
        using var scope = NewDisposeScope();
        var (B, C, p) = (input.shape[0], (long)v.Channels, (long)v.PatchSize);
        var g = (long)(v.ImageSize / v.PatchSize);
        // [B, C, g, p, g, p] -> [B, g, g, C, p, p]: each patch's pixels in (channel, row, column) order, as a p-strided
        // convolution's kernel reads them.
        var patches = input.to_type(patch_embed!.weight!.dtype).reshape(B, C, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, C * p * p);
        var x_BPD = patch_embed!.forward(patches);
        return (cat([cls_token!.expand(B, 1, Config.DModel), x_BPD], 1) + pos_embed!).MoveToOuterDisposeScope();
    }

    /// <summary>Dropout on the embedded sequence, the streams expanded, every block, the streams reduced: [B, T, D] -> [B, T, D].</summary>
    (Tensor Hidden, List<MoeStats> Moe) Trunk(Tensor h_BTD, DisposeScope scope)
    {
        var moeStats = new List<MoeStats>();
        // MoE aux losses leave every scope inside the MoE layer; each is attached here as it is produced.
        void Collect(MoeStats s) { scope.Attach(s.LoadBalancingLoss, s.RouterZLoss); moeStats.Add(s); }
        if (Config.Dropout > 0 && training) h_BTD = nn.functional.dropout(h_BTD, Config.Dropout, training);
        Tensor h;
        // recompute = hc with n copies of the state: the streams are kept once per segment of blocks and replayed.
        if (StreamReplay.Applies(recompute, Config.Connection, training))
            h = StreamReplay.Run(h_BTD, Config.Connection.Rate, [.. blocks.SelectMany(b => b.Steps(Collect))], StreamReplay.SegmentBlocks(Config.Layers));
        else
        {
            h = Streams.Expand(h_BTD, Config.Connection);
            foreach (var block in blocks) h = block.Forward(h, Collect);
        }
        return (Streams.Reduce(h, Config.Connection), moeStats);
    }

    /// <summary>
    /// The training objective: next-token cross-entropy, plus for MoE the load-balancing and router z-losses,
    /// each averaged over MoE layers and weighted by its coefficient (megablocks / OLMoE).
    /// Returns the total (to backpropagate) and its parts (scalars, in the graph).
    /// </summary>
    public LossParts Loss(ModelOutput output, Tensor targets_BT)
    {
        using var scope = NewDisposeScope();
        var V = output.Logits.shape[^1];
        // Class ids, or (a ViT's Mixup) a distribution over the classes per example.
        var targets = targets_BT.is_floating_point() ? targets_BT.reshape(-1, V).to_type(ScalarType.Float32) : targets_BT.reshape(-1);
        var ce = nn.functional.cross_entropy(output.Logits.reshape(-1, V).to_type(ScalarType.Float32), targets);
        Tensor? lb = null, z = null;
        var total = ce;
        if (output.Moe.Count > 0)
        {
            lb = stack(output.Moe.Select(m => m.LoadBalancingLoss).ToArray()).mean();
            z = stack(output.Moe.Select(m => m.RouterZLoss).ToArray()).mean();
            total = ce + lb * Config.Moe.LoadBalancingCoef + z * Config.Moe.RouterZLossCoef;
            lb.MoveToOuterDisposeScope();
            z.MoveToOuterDisposeScope();
        }
        ce.MoveToOuterDisposeScope();
        if (!ReferenceEquals(total, ce)) total.MoveToOuterDisposeScope();   // dense: total IS ce; moving it twice would leak it
        return new(total, ce, lb, z);
    }
}

/// <summary>The loss and its parts. <see cref="LoadBalancing"/> and <see cref="RouterZ"/> are null for dense models.</summary>
public sealed record LossParts(Tensor Total, Tensor CrossEntropy, Tensor? LoadBalancing, Tensor? RouterZ);
