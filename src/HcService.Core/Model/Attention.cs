using HcService.Contract.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Model;

// Axes: B batch, T time, D width, H heads, K head dim.

/// <summary>
/// Causal multi-head self-attention, OLMo style: one fused QKV projection, optional QK-norm over the full
/// width (OLMoE), rotary embeddings, <c>scaled_dot_product_attention</c>, output projection, no biases.
/// For a ViT (Config.Vision): bidirectional, no rotary embeddings, biases on both projections.
/// The sublayer's pre-norm is not here: the connection decides where the norm goes.
/// </summary>
public sealed class Attention : nn.Module<Tensor, Tensor>
{
    readonly Linear att_proj;   // D -> 3D (q | k | v)
    readonly Linear attn_out;   // D -> D
    readonly Norm? q_norm;
    readonly Norm? k_norm;
    readonly Rotary? rotary;
    readonly bool causal;
    readonly int heads;
    readonly double dropout;

    public Attention(string name, ModelConfig c) : base(name)
    {
        // A ViT's attention (Config.Vision): bidirectional, positions from learned embeddings (no RoPE), with biases.
        att_proj = nn.Linear(c.DModel, 3L * c.DModel, hasBias: c.IsVision);
        attn_out = nn.Linear(c.DModel, c.DModel, hasBias: c.IsVision);
        if (c.QkNorm)
        {
            q_norm = new Norm("q_norm", c.DModel, c.Norm, c.NormEps);
            k_norm = new Norm("k_norm", c.DModel, c.Norm, c.NormEps);
        }
        if (!c.IsVision) rotary = new Rotary(c.HeadDim, c.RopeTheta);
        causal = !c.IsVision;
        heads = c.Heads;
        dropout = c.Dropout;
        RegisterComponents();
    }

    internal Linear InputProjection => att_proj;
    internal Linear OutputProjection => attn_out;

    public override Tensor forward(Tensor x_BTD)
    {
        using var scope = NewDisposeScope();
        var (B, T, D) = (x_BTD.shape[0], x_BTD.shape[1], x_BTD.shape[2]);
        var qkv = att_proj.forward(x_BTD).chunk(3, -1);
        Tensor q = qkv[0], k = qkv[1], v = qkv[2];
        if (q_norm is not null) { q = q_norm.forward(q); k = k_norm!.forward(k); }
        Tensor Heads(Tensor t) => t.view(B, T, heads, D / heads).transpose(1, 2);   // [B, H, T, K]
        var (q_BHTK, k_BHTK) = rotary is null ? (Heads(q), Heads(k)) : rotary.Apply(Heads(q), Heads(k));
        var o_BHTK = nn.functional.scaled_dot_product_attention(
            q_BHTK, k_BHTK, Heads(v), p: training ? dropout : 0.0, is_casual: causal);
        var o_BTD = o_BHTK.transpose(1, 2).reshape(B, T, D);
        return attn_out.forward(o_BTD).MoveToOuterDisposeScope();
    }
}
