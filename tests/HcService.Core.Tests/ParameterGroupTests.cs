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
}
