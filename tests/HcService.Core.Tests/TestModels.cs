using HcService.Contract.Config;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>Small models and helpers shared by the numerical tests.</summary>
static class TestModels
{
    /// <summary>A tiny config: 2 blocks, d = 32, byte vocabulary.</summary>
    public static ModelConfig Tiny(ConnectionConfig connection, Architecture arch = Architecture.Dense,
        NormKind norm = NormKind.LayerNorm, double normEps = 1e-5) => new()
        {
            Name = "test",
            Layers = 2,
            DModel = 32,
            Heads = 4,
            MlpHidden = 48,
            MaxSeqLen = 32,
            Vocab = 64,
            EmbeddingSize = 64,
            Norm = norm,
            QkNorm = norm == NormKind.RmsNorm,
            NormEps = normEps,
            Architecture = arch,
            Moe = new() { Experts = 4, TopK = 2, ExpertHidden = 24 },
            Connection = connection,
        };

    public static LanguageModel Build(ModelConfig c, int seed = 1)
    {
        torch.manual_seed(seed);
        var m = new LanguageModel(c);
        m.eval();
        return m;
    }

    /// <summary>Copies every parameter of <paramref name="from"/> into the parameter of the same name in <paramref name="to"/>.
    /// Returns how many were copied (so a test can assert that the names matched).</summary>
    public static int CopySharedWeights(nn.Module from, nn.Module to)
    {
        var target = to.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var copied = 0;
        using var _ = no_grad();
        foreach (var (name, p) in from.named_parameters())
        {
            if (!target.TryGetValue(name, out var t)) continue;
            t.copy_(p);
            copied++;
        }
        return copied;
    }

    public static Tensor Tokens(int batch, int seq, int vocab, int seed = 7)
    {
        var g = new Generator((ulong)seed);
        return randint(0, vocab, [batch, seq], generator: g, dtype: ScalarType.Int64);
    }

    public static double MaxAbs(Tensor t) => t.abs().max().item<float>();

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().ToDouble();

    /// <summary>max |a - b| / max |b|.</summary>
    public static double RelDiff(Tensor a, Tensor b) => MaxAbsDiff(a, b) / b.abs().max().ToDouble();

    public static string FixturePath(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);
}
