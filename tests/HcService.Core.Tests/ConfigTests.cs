using HcService.Contract.Config;

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
        Assert.Contains("connection.rate = 0: must be an integer in [1, 64]", ex.Message);
    }

    [Fact]
    public void SizesBeyondTheBoundsAreRefusedAndCountsNeverWrapAround()
    {
        var huge = Presets.Tiny with { DModel = 2_000_000_000, Heads = 1, Layers = 5000, Vocab = int.MaxValue, EmbeddingSize = int.MaxValue };
        var fields = huge.Validate().Select(e => e.Field).ToList();
        Assert.Contains("model.dModel", fields);
        Assert.Contains("model.layers", fields);
        Assert.Contains("model.vocab", fields);
        // Unvalidated, the counts throw rather than wrap (4 L d^2 overflows 64 bits here).
        Assert.Throws<OverflowException>(() => HcService.Contract.Counting.ModelCounter.Parameters(huge));
        Assert.Throws<OverflowException>(() => HcService.Contract.Counting.ModelCounter.Memory(Presets.Tiny with { DModel = 65_536, Layers = 1024 }, int.MaxValue, bf16: false, eagerCpu: true));
        // At the bounds themselves every count is finite and positive.
        var largest = Presets.Tiny with { DModel = ModelConfig.MaxWidth, Heads = 64, Layers = ModelConfig.MaxLayers, MlpHidden = ModelConfig.MaxHidden, Vocab = ModelConfig.MaxVocab, EmbeddingSize = ModelConfig.MaxVocab };
        Assert.Empty(largest.Validate());
        Assert.True(HcService.Contract.Counting.ModelCounter.Parameters(largest).Total > 0);
    }

    [Theory]
    [InlineData("2M", 2_000_000L)]
    [InlineData("1.5T", 1_500_000_000_000L)]
    [InlineData("2_000_000", 2_000_000L)]
    [InlineData(" 10k ", 10_000L)]
    [InlineData("1e3K", null)]
    [InlineData("-5M", null)]
    [InlineData("1 M", null)]
    [InlineData("0x10", null)]
    [InlineData("NaN", null)]
    public void TokenCountsAreDigitsWithAnOptionalSuffix(string text, long? expected)
    {
        Assert.Equal(expected is not null, HcService.Contract.Jobs.TokenCount.TryParse(text, out var count));
        if (expected is { } e) Assert.Equal(e, count.Value);
    }

    [Theory]
    [InlineData("baseline", true)]
    [InlineData("Grüße 東京 ✓ 🙂", true)]
    [InlineData("run\\u202Egnp.exe", false)]
    [InlineData("base\\u200Bline", false)]
    [InlineData("a\\u2066b", false)]
    [InlineData("tab\\there", false)]
    [InlineData("bom\\uFEFF", false)]
    [InlineData("lone\\uD800", false)]
    public void LabelsArePrintableWithoutBidiOrZeroWidthCharacters(string escaped, bool printable) =>
        Assert.Equal(printable, Text.IsPrintable(System.Text.RegularExpressions.Regex.Unescape(escaped)));

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
    public void OutputInitScalingIsOffByDefaultAndOnlyForHyperConnectionsWhenAsked()
    {
        Assert.False(ConnectionConfig.DynamicHc(4).ScalesOutputInit);
        Assert.False(ConnectionConfig.Residual.ScalesOutputInit);
        Assert.False((ConnectionConfig.Residual with { ScaleOutputInit = true }).ScalesOutputInit);
        Assert.True((ConnectionConfig.StaticHc(2) with { ScaleOutputInit = true }).ScalesOutputInit);
    }
}
