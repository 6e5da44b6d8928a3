using HcService.Core.Model;
using TorchSharp.Modules;

namespace HcService.Core.Optim;

/// <summary>
/// AdamW parameter groups (docs/hc-math.md section 7.1, OLMo's optimizer rules):
///   decay:    weight matrices of the attention, MLP, experts, router and untied head, the DHC and dynamic-FC
///             projections, and mHC's phi.
///   no decay: the HC and FC static parts (B, A_m, A_r; B, Y, A: missing decay on them is the reported cure for NaN
///             divergence), the dynamic scales s_a and s_b, mHC's scales a_* and biases b_*, every norm weight, and the
///             embedding (OLMo's decay_embeddings = false).
/// </summary>
public static class ParameterGroups
{
    public sealed record Split(IReadOnlyList<(string Name, Parameter Param)> Decay, IReadOnlyList<(string Name, Parameter Param)> NoDecay);

    static readonly string[] NoDecayLeaves = ["static_beta", "static_alpha", "dynamic_alpha_scale", "dynamic_beta_scale",
        "mhc_scale", "mhc_bias_pre", "mhc_bias_post", "mhc_bias_res"];

    public static bool Decays(string name)
    {
        var leaf = name[(name.LastIndexOf('.') + 1)..];
        if (NoDecayLeaves.Contains(leaf)) return false;
        if (name.StartsWith("wte.", StringComparison.Ordinal)) return false;
        // A ViT's embeddings (patch projection, class token, positions) and every bias, as the ViT and DeiT recipes do.
        if (name.StartsWith("patch_embed.", StringComparison.Ordinal) || name is "cls_token" or "pos_embed" || leaf == "bias") return false;
        // Norm weights: every Norm module is registered under a name ending in "norm" or "ln_f".
        var owner = name.Contains('.') ? name[..name.LastIndexOf('.')] : "";
        var ownerLeaf = owner[(owner.LastIndexOf('.') + 1)..];
        if (ownerLeaf.EndsWith("norm", StringComparison.Ordinal) || ownerLeaf == "ln_f") return false;
        return true;
    }

    public static Split Of(LanguageModel model)
    {
        var all = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        return new(all.Where(p => Decays(p.name)).ToList(), all.Where(p => !Decays(p.name)).ToList());
    }
}

/// <summary>The paper's optimizer: AdamW with betas (0.9, 0.95), eps 1e-8, weight decay on the decay group only.
/// TorchSharp's AdamW defaults differ (beta2), so every value is explicit.</summary>
public static class Optimizers
{
    public static TorchSharp.Modules.AdamW AdamW(LanguageModel model, double lr, double weightDecay = 0.1,
        double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8)
    {
        var split = ParameterGroups.Of(model);
        return TorchSharp.torch.optim.AdamW(
        [
            new TorchSharp.Modules.AdamW.ParamGroup(split.Decay.Select(p => p.Param), lr, beta1, beta2, eps, weightDecay),
            new TorchSharp.Modules.AdamW.ParamGroup(split.NoDecay.Select(p => p.Param), lr, beta1, beta2, eps, 0.0),
        ], lr, beta1, beta2, eps, weightDecay);
    }
}
