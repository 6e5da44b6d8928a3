using HcService.Contract.Config;
using HcService.Core.Optim;

namespace HcService.Core.Tests;

public class ParameterGroupTests
{
    [Fact]
    public void StaticHcPartsScalesNormsAndEmbeddingGetNoWeightDecay()
    {
        var c = TestModels.Tiny(ConnectionConfig.DynamicHc(2), Architecture.Moe, NormKind.RmsNorm) with { TieEmbeddings = false };
        var split = ParameterGroups.Of(TestModels.Build(c));
        var noDecay = split.NoDecay.Select(p => p.Name).ToHashSet();
        var decay = split.Decay.Select(p => p.Name).ToHashSet();

        Assert.Contains("blocks.0.attn_conn.static_beta", noDecay);
        Assert.Contains("blocks.0.attn_conn.static_alpha", noDecay);
        Assert.Contains("blocks.1.ff_conn.dynamic_alpha_scale", noDecay);
        Assert.Contains("blocks.1.ff_conn.dynamic_beta_scale", noDecay);
        Assert.Contains("blocks.1.ff_conn.norm.weight", noDecay);
        Assert.Contains("blocks.0.attn_norm.weight", noDecay);
        Assert.Contains("blocks.0.attn.q_norm.weight", noDecay);
        Assert.Contains("ln_f.weight", noDecay);
        Assert.Contains("wte.weight", noDecay);

        Assert.Contains("blocks.0.attn_conn.dynamic_proj", decay);
        Assert.Contains("blocks.0.attn.att_proj.weight", decay);
        Assert.Contains("blocks.1.moe.router.weight", decay);
        Assert.Contains("blocks.1.moe.experts.3.ff_out.weight", decay);
        Assert.Contains("lm_head.weight", decay);
        Assert.Empty(decay.Intersect(noDecay));
        Assert.Equal(TestModels.Build(c).parameters().Count(), decay.Count + noDecay.Count);
    }

    /// <summary>A ViT decays only its weight matrices: not the patch projection, class token, positions, biases or the
    /// affine norms' weights and biases (the ViT and DeiT recipes).</summary>
    [Fact]
    public void AViTDecaysOnlyItsWeightMatrices()
    {
        var model = TestModels.Build(Presets.VitTiny with { Connection = ConnectionConfig.DynamicHc(2) });
        var split = ParameterGroups.Of(model);
        var decay = split.Decay.Select(p => p.Name).Order().ToList();
        Assert.Equal(new[] { "lm_head.weight" }.Concat(Enumerable.Range(0, 4).SelectMany(l => new[]
            {
                $"blocks.{l}.attn.att_proj.weight", $"blocks.{l}.attn.attn_out.weight", $"blocks.{l}.attn_conn.dynamic_proj",
                $"blocks.{l}.ff_conn.dynamic_proj", $"blocks.{l}.mlp.fc1.weight", $"blocks.{l}.mlp.fc2.weight",
            })).Order(), decay);
        var noDecay = split.NoDecay.Select(p => p.Name).ToHashSet();
        foreach (var name in new[] { "patch_embed.weight", "patch_embed.bias", "cls_token", "pos_embed", "lm_head.bias", "ln_f.weight", "ln_f.bias",
                     "blocks.0.attn.att_proj.bias", "blocks.2.mlp.fc2.bias", "blocks.1.attn_norm.bias" })
            Assert.Contains(name, noDecay);
    }
}
