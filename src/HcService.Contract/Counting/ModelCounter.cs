using HcService.Contract.Config;

namespace HcService.Contract.Counting;

/// <summary>Parameter counts of a model, by part. Every number follows from the config alone.</summary>
public sealed record ParameterCount(
    long Embedding, long Head, long Attention, long FeedForward, long FeedForwardActive,
    long SublayerNorms, long QkNorms, long FinalNorm, long HyperConnections)
{
    /// <summary>Every learned parameter of the instantiated model.</summary>
    public long Total => checked(Embedding + Head + Attention + FeedForward + SublayerNorms + QkNorms + FinalNorm + HyperConnections);
    /// <summary>The model without its connection parameters (the residual host model).</summary>
    public long Base => Total - HyperConnections;
    /// <summary>
    /// The paper's convention (Table 7, docs/hc-math.md section 6.2): everything except QK-norm and final-norm weights. For OLMo dense
    /// (LayerNorm without affine) it equals <see cref="Base"/>; for OLMoE-1B-7B it gives 6,919,094,272.
    /// </summary>
    public long PaperBase => Base - (CountsEveryWeight ? 0 : QkNorms + FinalNorm);
    /// <summary>A ViT: its published counts (86.6M for ViT-B/16) include every weight and bias, the final norm's too.</summary>
    public bool CountsEveryWeight { get; init; }
    /// <summary>Parameters a token passes through: MoE counts only the top-k experts.</summary>
    public long Active => checked(Total - FeedForward + FeedForwardActive);
}

/// <summary>FLOPs per token. Forward counts matmuls (2 per multiply-add), with attention's QK^T and AV over the
/// full sequence (the PaLM / OLMo convention); training = 3 x forward.</summary>
public sealed record FlopCount(long ForwardBase, long ForwardHyperConnections)
{
    public long Forward => checked(ForwardBase + ForwardHyperConnections);
    public long Training => checked(3 * Forward);
    public double HyperConnectionOverhead => (double)ForwardHyperConnections / ForwardBase;
}

/// <summary>Training memory estimate in bytes (see <see cref="ModelCounter.Memory"/>).</summary>
/// <param name="Workspace">What the framework holds besides tensors of the model (fp32/CPU: measured, see
/// <see cref="ModelCounter.Memory"/>).</param>
public sealed record MemoryEstimate(long WeightsAndOptimizer, long ActivationsBase, long ActivationsHyperConnections, long Logits, long Workspace = 0)
{
    public long Activations => checked(ActivationsBase + ActivationsHyperConnections + Logits);
    public long Total => checked(WeightsAndOptimizer + Activations + Workspace);
}

/// <summary>Analytic parameter, FLOP and memory counts for any preset + connection + rate.</summary>
public static class ModelCounter
{
    /// <remarks>Checked arithmetic throughout: a config too large for 64-bit counts throws <see cref="OverflowException"/>
    /// rather than wrapping around (validated configs are bounded well inside).</remarks>
    public static ParameterCount Parameters(ModelConfig c)
    {
        checked
        {
        long d = c.DModel, L = c.Layers, V = c.EmbeddingSize;
        var norm = NormParameters(c.Norm, d);
        long ff, ffActive;
        if (c.IsMoe)
        {
            long router = d * c.Moe.Experts, expert = 3 * d * c.Moe.ExpertHidden;
            ff = L * (router + c.Moe.Experts * expert);
            ffActive = L * (router + c.Moe.TopK * expert);
        }
        else if (c.Vision is not null)
        {
            ff = ffActive = L * (2 * d * c.MlpHidden + c.MlpHidden + d);   // GELU MLP: D x F and F x D, with biases
        }
        else
        {
            ff = ffActive = L * 3 * d * c.MlpHidden;    // SwiGLU: D x 2F in, F x D out
        }
        if (c.Vision is { } v)
            return new ParameterCount(
                Embedding: v.PatchInputs * d + d + d + v.SequenceLength * d,   // patch projection and bias, class token, positions
                Head: d * v.Classes + v.Classes,
                Attention: L * (4 * d * d + 4 * d),      // QKV and output projections, with biases
                FeedForward: ff,
                FeedForwardActive: ffActive,
                SublayerNorms: L * 2 * norm,
                QkNorms: 0,
                FinalNorm: norm,
                HyperConnections: c.Sublayers * HyperConnectionParameters(c)) { CountsEveryWeight = true };
        return new ParameterCount(
            Embedding: V * d,
            Head: c.TieEmbeddings ? 0 : V * d,
            Attention: L * 4 * d * d,                    // fused QKV (3 d^2) + output (d^2)
            FeedForward: ff,
            FeedForwardActive: ffActive,
            SublayerNorms: L * 2 * norm,
            QkNorms: c.QkNorm ? L * 2 * norm : 0,
            FinalNorm: norm,
            HyperConnections: c.Sublayers * HyperConnectionParameters(c));
        }
    }

    public static FlopCount Flops(ModelConfig c, int? seqLen = null)
    {
        checked
        {
        long d = c.DModel, L = c.Layers, T = seqLen ?? c.MaxSeqLen;
        var p = Parameters(c);
        // The head multiplies even when tied; a ViT's runs once per image (not counted per token) and its patch projection per token.
        var matmulParams = p.Attention + p.FeedForwardActive + (c.Vision is { } v ? (long)v.PatchInputs * d : (long)c.EmbeddingSize * d);
        var attention = L * 2 * 2 * T * d;                                          // QK^T and AV
        return new FlopCount(2 * matmulParams + attention, c.Sublayers * HyperConnectionForwardFlops(c));
        }
    }

    /// <summary>
    /// Training memory for a micro-batch of <paramref name="microBatch"/> sequences of the model's length.
    /// Weights and optimizer: 16 bytes per parameter (fp32 master weights, fp32 gradients, two fp32 Adam moments),
    /// plus 2 bytes per parameter for the bf16 compute copy when <paramref name="bf16"/>.
    /// Activations (Korthikanti et al. 2022, fused attention so no T^2 term): 34 s b d bytes per block in 16-bit;
    /// HC keeps its n-stream state: +2 n s b d elements per block (docs/hc-math.md section 6.4), 2 bytes each in bf16, 4 in fp32;
    /// logits s b V at 2 + 4 bytes (bf16 output and fp32 loss input).
    /// <paramref name="eagerCpu"/> (a CPU worker: fp32, eager TorchSharp, no fused kernels) is calibrated on measured
    /// peaks (`hc bench memory`, BENCHMARKS.md) and set
    /// at or above every one of them: 26 bytes per parameter (the 16 above plus gradient-clipping and optimizer
    /// temporaries), 124 bytes per s b d per block (autograd keeps more intermediates than the fused 16-bit kernels:
    /// 1.8x twice 34), HC 10 n bytes per s b d per block (static) and 19 n (dynamic: its projections of the n streams
    /// are kept too), logits 11 bytes per s b V, and 192 MiB of framework workspace (thread pools, allocator arenas).
    /// </summary>
    public static MemoryEstimate Memory(ModelConfig c, int microBatch = 1, bool bf16 = true, bool eagerCpu = false,
        HcService.Contract.Jobs.RecomputeMode recompute = HcService.Contract.Jobs.RecomputeMode.None)
    {
        checked
        {
        var p = Parameters(c);
        long s = c.MaxSeqLen, b = microBatch, d = c.DModel, L = c.Layers, n = c.Connection.Rate;
        if (eagerCpu && !bf16)
        {
            // Frac-Connections keep one d-wide state, like HC at n = 1 (FC's point); mHC keeps what DHC keeps. Under
            // recompute = hc the input-dependent weights are made again in backward: dynamic keeps what static keeps.
            var hc = recompute == HcService.Contract.Jobs.RecomputeMode.Hc;
            var hcBytes = c.Connection.Type switch
            {
                ConnectionType.DynamicHc or ConnectionType.Mhc or ConnectionType.MhcLite => (hc ? 10 : 19) * n,
                ConnectionType.StaticHc => 10 * n,
                ConnectionType.Frac => c.Connection.Dynamic && !hc ? 19 : 10,
                _ => 0,
            };
            if (recompute == HcService.Contract.Jobs.RecomputeMode.Block)
                // Each block keeps its input (the state: n streams, or one for residual and FC, fp32), and backward
                // holds one block's activations while it recomputes it, and that block's gradients (counted as much again).
                return new MemoryEstimate(p.Total * 26, 4 * s * b * d * c.Connection.StreamCount * L / (c.Connection.IsFrac ? c.Connection.Fractions : 1) + 2 * 124 * s * b * d,
                    2 * hcBytes * s * b * d, 11 * s * b * c.EmbeddingSize, 192L << 20);
            return new MemoryEstimate(p.Total * 26, 124 * s * b * d * L, hcBytes * s * b * d * L, 11 * s * b * c.EmbeddingSize, 192L << 20);
        }
        long act = bf16 ? 1 : 2;                       // fp32 on a GPU: the 16-bit activation terms doubled
        var weights = p.Total * (16 + (bf16 ? 2 : 0));
        var baseAct = 34 * s * b * d * L * act;
        // The connection's extra state: 2 n s b d per block for n copies (HC, mHC), 2 s b d for the d-wide fractions.
        var hcAct = c.Connection.CopiesStreams ? 2L * n * s * b * d * L * 2 * act : c.Connection.IsFrac ? 2L * s * b * d * L * 2 * act : 0;
        var logits = s * b * c.EmbeddingSize * (bf16 ? 6 : 8);
        return new MemoryEstimate(weights, baseAct, hcAct, logits);
        }
    }

    /// <summary>Learned parameters of one norm of this kind and width: RMSNorm has a weight, the non-parametric LayerNorm none.</summary>
    public static long NormParameters(NormKind kind, long dim) => kind switch { NormKind.RmsNorm => dim, NormKind.AffineLayerNorm => 2 * dim, _ => 0 };

    /// <summary>Learned parameters of one connection module around one sublayer (docs/hc-math.md sections 6.1 and 11).</summary>
    public static long HyperConnectionParameters(ModelConfig model)
    {
        var c = model.Connection;
        long n = c.Rate, d = model.DModel;
        switch (c.Type)
        {
            case ConnectionType.StaticHc or ConnectionType.DynamicHc:
                var count = n * (n + 2);                                            // B and [A_m | A_r]
                if (c.Type == ConnectionType.DynamicHc) count += d * (n + 2) + 2 + NormParameters(model.StreamNorm, d);
                return count;
            case ConnectionType.Frac:
                long m = c.Fractions, width = d / m;
                var frac = m * (2 * m + 1);                                         // B and [Y | A]
                if (c.Dynamic) frac += width * (2 * m + 1) + 2 + NormParameters(model.StreamNorm, width);
                return frac;
            case ConnectionType.Mhc or ConnectionType.MhcLite:
                var logits = ManifoldMixingLogits(c);
                return n * d * (2 * n + logits) + 3 + 2 * n + logits;              // phi, a_pre/a_post/a_res, b_pre, b_post, b_res
            default:
                return 0;
        }
    }

    /// <summary>The residual-mixing logits of mHC (n^2, Sinkhorn-Knopp) and mHC-lite (n!, one per permutation).</summary>
    public static long ManifoldMixingLogits(ConnectionConfig c) => c.Type == ConnectionType.MhcLite ? ConnectionConfig.Factorial(c.Rate) : (long)c.Rate * c.Rate;

    /// <summary>Matmul FLOPs per token of one connection module's forward (elementwise work, including mHC's Sinkhorn
    /// iterations, is not counted, as in the base count).</summary>
    public static long HyperConnectionForwardFlops(ModelConfig model)
    {
        var c = model.Connection;
        long n = c.Rate, d = model.DModel;
        switch (c.Type)
        {
            case ConnectionType.StaticHc or ConnectionType.DynamicHc:
                var flops = 2 * n * (n + 1) * d;                                    // [x ; H'] = WC^T H
                if (c.Type == ConnectionType.DynamicHc) flops += 2 * n * d * (n + 2);   // Hn [W_wc | W_b]
                return flops;
            case ConnectionType.Frac:
                long m = c.Fractions;
                var frac = 2 * 2 * m * d;                                           // [x ; F'] = [Y | A]^T F: 2m x m times m x d/m
                if (c.Dynamic) frac += 2 * d * (2 * m + 1);                         // Fn W per fraction: m x (d/m) x (2m+1)
                return frac;
            case ConnectionType.Mhc or ConnectionType.MhcLite:
                var mix = 2 * n * (n + 1) * d;                                      // x = A_m^T H, H' = A_r^T H
                mix += 2 * n * d * (2 * n + ManifoldMixingLogits(c));               // x~ phi
                if (c.Type == ConnectionType.MhcLite) mix += 2 * ManifoldMixingLogits(c) * n * n;   // softmax(z) P
                return mix;
            default:
                return 0;
        }
    }
}
