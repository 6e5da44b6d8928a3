using HcService.Contract.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Model;

/// <summary>
/// Weight initialisation (docs/hc-math.md sections 3.5 and 4). Every draw is a normal truncated at 3 std.
///   normal:   every matrix std = initStd (0.02).
///   mitchell: inputs (embedding, QKV, MLP in, router, untied head) 1/sqrt(d);
///             attention out 1/sqrt(2 d (layer+1)); MLP out 1/sqrt(2 F (layer+1)), F = the MLP (or expert) hidden width.
/// With scaleOutputInit (HC only) the attention-out and MLP-out std is divided by sqrt(n) (paper section 4; the
/// paper says "scale by sqrt(n)" without a direction, and reimplementations divide).
/// Norm weights are 1; HC parameters are set by <see cref="Connections.HyperConnection"/> itself (eq. 14).
/// Draws use torch's global generator: seed it first for reproducible weights.
/// </summary>
public static class Initializer
{
    public static void Apply(LanguageModel model)
    {
        var c = model.Config;
        using var _ = no_grad();
        double d = c.DModel;
        var outScale = c.Connection.ScalesOutputInit ? 1.0 / Math.Sqrt(c.Connection.Rate) : 1.0;
        double InStd() => c.Init == InitKind.Mitchell ? 1.0 / Math.Sqrt(d) : c.InitStd;
        double OutStd(double fanIn, int layer) =>
            (c.Init == InitKind.Mitchell ? 1.0 / Math.Sqrt(2.0 * fanIn * (layer + 1)) : c.InitStd) * outScale;

        if (model.Embedding is { } wte) Draw(wte.weight!, InStd());
        if (c.IsVision)
        {
            // ViT: the patch projection, class token and positions N(0, initStd); the head zero, as the ViT paper does
            // (every class starts at the same logit); every bias zero.
            Draw(model.PatchEmbedding!.weight!, InStd());
            Draw(model.VisionEmbeddings!.Value.ClassToken, InStd());
            Draw(model.VisionEmbeddings!.Value.Positions, InStd());
            model.Head!.weight!.zero_();
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal)) p.zero_();
        }
        else if (model.Head is { } head) Draw(head.weight!, InStd());
        for (var l = 0; l < model.Blocks.Count; l++)
        {
            var block = model.Blocks[l];
            Draw(block.Attn.InputProjection.weight!, InStd());
            Draw(block.Attn.OutputProjection.weight!, OutStd(d, l));
            if (block.Mlp is { } mlp) InitMlp(mlp, c.MlpHidden, l);
            if (block.VitMlp is { } vit)
            {
                Draw(vit.InputProjection.weight!, InStd());
                Draw(vit.OutputProjection.weight!, OutStd(c.MlpHidden, l));
            }
            if (block.Moe is { } moe)
            {
                Draw(moe.Router.weight!, InStd());
                foreach (var expert in moe.Experts) InitMlp(expert, c.Moe.ExpertHidden, l);
            }
        }

        void InitMlp(SwiGlu mlp, int hidden, int layer)
        {
            Draw(mlp.InputProjection.weight!, InStd());
            Draw(mlp.OutputProjection.weight!, OutStd(hidden, layer));
        }
    }

    /// <summary>N(0, std) truncated at 3 std by redrawing the values outside (as torch.nn.init.trunc_normal_ does in
    /// distribution). TorchSharp 0.107's own trunc_normal_ returns values of the order 1e-9 here, so it is not used.</summary>
    static void Draw(Tensor w, double std)
    {
        using var scope = NewDisposeScope();
        w.normal_(0.0, std);
        for (var outside = w.abs() > 3 * std; outside.any().item<bool>(); outside = w.abs() > 3 * std)
            w.copy_(where(outside, randn_like(w) * std, w));
    }
}
