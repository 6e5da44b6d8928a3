using HcService.Core.Config;

namespace HcService.Core.Tests;

public class ConfigTests
{
    [Fact]
    public void ValidateNamesEveryInvalidFieldWithValueAndAllowedRange()
    {
        var c = Presets.Tiny with
        {
            Heads = 5,
            Architecture = Architecture.Moe,
            Moe = new() { Experts = 2, TopK = 3 },
            Connection = new() { Type = ConnectionType.DynamicHc, Rate = 0 },
        };
        var errors = c.Validate();
        Assert.Contains(errors, e => e.Field == "model.heads" && Equals(e.Value, 5) && e.Allowed.Contains("dividing dModel = 64"));
        Assert.Contains(errors, e => e.Field == "moe.topK" && Equals(e.Value, 3) && e.Allowed.Contains("experts = 2"));
        Assert.Contains(errors, e => e.Field == "connection.rate" && Equals(e.Value, 0));
        var ex = Assert.Throws<ConfigException>(() => c.EnsureValid());
        Assert.Contains("connection.rate = 0: must be an integer >= 1", ex.Message);
    }

    [Fact]
    public void ResidualRejectsRateAboveOne()
    {
        var errors = (Presets.Tiny with { Connection = new() { Type = ConnectionType.Residual, Rate = 4 } }).Validate();
        Assert.Single(errors);
        Assert.Equal("connection.rate", errors[0].Field);
    }

    [Fact]
    public void UnknownPresetListsTheKnownOnes()
    {
        var ex = Assert.Throws<ConfigException>(() => Presets.Get("olmo-3b"));
        Assert.Contains("model.preset = 'olmo-3b'", ex.Message);
        Assert.Contains("olmo-1b", ex.Message);
    }

    [Fact]
    public void OverridesChangeOnlyWhatTheyName()
    {
        var c = new ModelOverrides { Layers = 4, Vocab = 50280, Experts = 16, TopK = 4 }.Apply(Presets.Small);
        Assert.Equal(4, c.Layers);
        Assert.Equal(Presets.Small.DModel, c.DModel);
        Assert.Equal(50280, c.Vocab);
        Assert.Equal(50280, c.EmbeddingSize);     // small does not pad its vocabulary
        Assert.Equal(16, c.Moe.Experts);
        Assert.Equal(4, c.Moe.TopK);
        var padded = new ModelOverrides { Vocab = 1000 }.Apply(Presets.Olmo1B);
        Assert.Equal(1024, padded.EmbeddingSize);  // olmo pads to a multiple of 128
    }

    [Fact]
    public void OutputInitScalingDefaultsOnForHyperConnectionsOnly()
    {
        Assert.True(ConnectionConfig.DynamicHc(4).ScalesOutputInit);
        Assert.False(ConnectionConfig.Residual.ScalesOutputInit);
        Assert.False((ConnectionConfig.StaticHc(2) with { ScaleOutputInit = false }).ScalesOutputInit);
    }
}
