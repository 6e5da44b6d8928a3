using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>The ViT presets: the published parameter counts, analytic and instantiated; the patch embedding is a p-strided
/// convolution; attention is bidirectional; and every connection type wraps the ViT's sublayers, HC equal to residual at
/// init as in the language model.</summary>
[Collection(GlobalTorchRng.Name)]   // builds models from the global generator
public class VisionModelTests
{
    /// <summary>ViT-S/16, ViT-B/16 and ViT-L/16 at 224 px with a 1000-class head, counted as the ViT paper does (every
    /// weight and bias): 22.1M, 86.6M and 304M. Worked out by hand for ViT-B/16: patches 16 x 16 x 3 x 768 + 768 = 590,592;
    /// class token 768; positions 197 x 768 = 151,296; per block 2 LayerNorms 3,072, QKV 1,771,776, output 590,592, MLP
    /// 2,362,368 + 2,360,064, so 7,087,872 x 12 = 85,054,464; final norm 1,536; head 769,000.</summary>
    [Theory]
    [InlineData("vit-s-16", 22_050_664L)]
    [InlineData("vit-b-16", 86_567_656L)]
    [InlineData("vit-l-16", 304_326_632L)]
    public void PresetsHaveThePublishedParameterCounts(string preset, long expected)
    {
        var config = Presets.Get(preset);
        var counted = ModelCounter.Parameters(config);
        Assert.Equal(expected, counted.Total);
        Assert.Equal(expected, counted.PaperBase);   // ViT's convention: everything, the final norm too
        using var model = new LanguageModel(config);
        Assert.Equal(expected, model.parameters().Sum(p => p.numel()));
    }

    /// <summary>The analytic count equals the instantiated one for every connection around the ViT's sublayers.</summary>
    [Theory]
    [MemberData(nameof(Connections))]
    public void EveryConnectionIsCountedAsInstantiated(ConnectionConfig connection)
    {
        var config = Presets.VitTiny with { Connection = connection };
        using var model = new LanguageModel(config);
        Assert.Equal(ModelCounter.Parameters(config).Total, model.parameters().Sum(p => p.numel()));
    }

    public static TheoryData<ConnectionConfig> Connections() =>
    [
        ConnectionConfig.Residual, new ConnectionConfig { Type = ConnectionType.PostNorm }, ConnectionConfig.StaticHc(2),
        ConnectionConfig.DynamicHc(2), ConnectionConfig.Frac(4), ConnectionConfig.Mhc(4), ConnectionConfig.MhcLite(3),
    ];

    /// <summary>The patch embedding is the ViT's p-strided convolution: the same numbers as conv2d with the projection's
    /// weight laid out as [D, C, p, p], then the class token in front and the positions added.</summary>
    [Fact]
    public void PatchEmbeddingIsAStridedConvolution()
    {
        var config = Presets.VitTiny with { Vision = Presets.VitTiny.Vision! with { Channels = 3 } };
        using var model = TestModels.Build(config);
        var v = config.Vision!;
        var images = randn(2, v.Channels, v.ImageSize, v.ImageSize, generator: new Generator(3));
        using var _ = no_grad();
        var embedded = model.Embed(images);
        var kernel = model.PatchEmbedding!.weight!.reshape(config.DModel, v.Channels, v.PatchSize, v.PatchSize);
        var conv = nn.functional.conv2d(images, kernel, model.PatchEmbedding.bias, strides: [v.PatchSize, v.PatchSize]);
        var (cls, positions) = model.VisionEmbeddings!.Value;
        var expected = cat([cls.expand(2, 1, config.DModel), conv.flatten(2).transpose(1, 2)], 1) + positions;
        Assert.Equal([2, v.SequenceLength, config.DModel], embedded.shape);
        Assert.True(TestModels.MaxAbsDiff(embedded, expected) < 1e-5, $"differs by {TestModels.MaxAbsDiff(embedded, expected):E2}");
    }

    /// <summary>Attention is bidirectional: the class token at position 0 reads the last patch (a causal mask would hide
    /// it), so changing only the bottom-right pixels changes the logits.</summary>
    [Fact]
    public void TheClassTokenSeesTheLastPatch()
    {
        using var model = TestModels.Build(Presets.VitTiny);
        Perturb(model);
        var images = randn(1, 1, 28, 28, generator: new Generator(4));
        var changed = images.clone();
        changed[0, 0, 27, 27] = changed[0, 0, 27, 27] + 3.0f;
        using var _ = no_grad();
        var difference = TestModels.MaxAbsDiff(model.Forward(images).Logits, model.Forward(changed).Logits);
        Assert.True(difference > 1e-4, $"the logits moved by {difference:E2}");
    }

    /// <summary>The paper's init makes HC equal to its residual host at init (docs/hc-math.md section 3.4), in a ViT as in
    /// the language model: the same seed gives the same host weights and the same logits.</summary>
    [Theory]
    [InlineData(ConnectionType.StaticHc)]
    [InlineData(ConnectionType.DynamicHc)]
    public void HcAtInitEqualsTheResidualViT(ConnectionType type)
    {
        // Norm eps 0: the trunk ends in the sum of n equal streams, n times the residual's state, which only an
        // exactly scale-invariant final norm maps to the same output.
        var residual = Presets.VitTiny with { NormEps = 0 };
        var hc = residual with { Connection = new ConnectionConfig { Type = type, Rate = 2 } };
        using var a = TestModels.Build(residual, seed: 5);
        using var b = TestModels.Build(hc, seed: 5);
        // The zero-initialised head would make every logit 0: give both the same head.
        using (no_grad())
        {
            var g = new Generator(6);
            var head = randn(a.Head!.weight!.shape, generator: g) * 0.02;
            a.Head.weight!.copy_(head);
            b.Head!.weight!.copy_(head);
        }
        var images = randn(3, 1, 28, 28, generator: new Generator(7));
        using var _ = no_grad();
        var (la, lb) = (a.Forward(images).Logits, b.Forward(images).Logits);
        Assert.True(TestModels.MaxAbs(la) > 1e-3, "the logits are not trivial");
        Assert.True(TestModels.MaxAbsDiff(la, lb) < 1e-5, $"differs by {TestModels.MaxAbsDiff(la, lb):E2}");
    }

    /// <summary>The bf16 copy of mixed precision (the CUDA default) takes the fp32 images the batcher makes, with its
    /// affine norms in bf16: a forward and backward run, with finite logits and gradients.</summary>
    [Fact]
    public void ABf16ViTTrainsOnFloatImages()
    {
        using var model = TestModels.Build(Presets.VitTiny with { Connection = ConnectionConfig.DynamicHc(2) });
        Perturb(model);
        model.to(ScalarType.BFloat16);
        model.train();
        var output = model.Forward(randn(4, 1, 28, 28, generator: new Generator(8)));
        var loss = model.Loss(output, tensor(new long[] { 0, 3, 7, 9 })).Total;
        loss.backward();
        Assert.True(double.IsFinite(loss.item<float>()));
        Assert.All(model.parameters(), p => Assert.True(p.grad is not null && p.grad.isfinite().all().item<bool>(), "a gradient is missing or not finite"));
    }

    static void Perturb(LanguageModel model)
    {
        using var _ = no_grad();
        var g = new Generator(11);
        foreach (var p in model.parameters()) p.add_(randn(p.shape, generator: g) * 0.05);
    }
}
