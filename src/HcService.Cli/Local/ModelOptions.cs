using System.CommandLine;
using HcService.Contract.Config;

namespace HcService.Cli;

/// <summary>The command-line options that pick a model: preset, architecture, connection and overrides.</summary>
sealed class ModelOptions
{
    public readonly Option<string> Preset = new("--preset") { Description = "Model preset: " + string.Join(", ", Presets.All.Keys), DefaultValueFactory = _ => "olmo-1b" };
    public readonly Option<string?> Architecture = new("--architecture") { Description = "dense | moe (default: the preset's)" };
    public readonly Option<string?> Connection = new("--connection") { Description = string.Join(" | ", Names.Connections) };
    public readonly Option<int> Rate = new("--rate") { Description = "Expansion rate n for static-hc, dynamic-hc, mhc, mhc-lite (mhc-lite: at most 4)", DefaultValueFactory = _ => 4 };
    public readonly Option<int> Fractions = new("--fractions") { Description = "Fraction rate m for frac (a divisor of the width)", DefaultValueFactory = _ => 4 };
    public readonly Option<bool> StaticFrac = new("--static") { Description = "frac: static weights (default: dynamic)" };
    public readonly Option<string> MhcInit = new("--mhc-init") { Description = "mhc, mhc-lite: " + string.Join(" | ", Names.MhcInits), DefaultValueFactory = _ => "identity" };
    public readonly Option<int> SinkhornIterations = new("--sinkhorn-iterations") { Description = "mhc: Sinkhorn-Knopp iterations", DefaultValueFactory = _ => 20 };
    public readonly Option<bool> NoTanh = new("--no-tanh") { Description = "Dynamic HC or FC without tanh (the paper's ablation)" };
    public readonly Option<int?> Layers = new("--layers") { Description = "Override: transformer blocks" };
    public readonly Option<int?> DModel = new("--d-model") { Description = "Override: width d" };
    public readonly Option<int?> Heads = new("--heads") { Description = "Override: attention heads" };
    public readonly Option<int?> MlpHidden = new("--mlp-hidden") { Description = "Override: SwiGLU hidden width" };
    public readonly Option<int?> SeqLen = new("--seq-len") { Description = "Override: sequence length" };
    public readonly Option<int?> Vocab = new("--vocab") { Description = "Override: vocabulary size" };
    public readonly Option<int?> Experts = new("--experts") { Description = "Override: MoE experts" };
    public readonly Option<int?> TopK = new("--top-k") { Description = "Override: MoE experts per token" };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Preset, Architecture, Connection, Rate, Fractions, StaticFrac, MhcInit, SinkhornIterations, NoTanh, Layers, DModel, Heads, MlpHidden, SeqLen, Vocab, Experts, TopK })
            command.Add(o);
    }

    /// <summary>The preset with overrides and architecture applied, without a connection (the caller picks it).</summary>
    public ModelConfig Host(ParseResult r)
    {
        var c = new ModelOverrides
        {
            Layers = r.GetValue(Layers), DModel = r.GetValue(DModel), Heads = r.GetValue(Heads), MlpHidden = r.GetValue(MlpHidden),
            MaxSeqLen = r.GetValue(SeqLen), Vocab = r.GetValue(Vocab), Experts = r.GetValue(Experts), TopK = r.GetValue(TopK),
        }.Apply(Presets.Get(r.GetValue(Preset)!));
        return r.GetValue(Architecture) switch
        {
            null => c,
            "dense" => c with { Architecture = Contract.Config.Architecture.Dense },
            "moe" => c with { Architecture = Contract.Config.Architecture.Moe },
            var other => throw new ConfigException([new("architecture", other, "dense or moe")]),
        };
    }

    /// <summary>The connection named on the command line, or null when none was given.</summary>
    public ConnectionConfig? ConnectionOrNull(ParseResult r)
    {
        var name = r.GetValue(Connection);
        if (name is null) return null;
        if (!Names.TryParseConnection(name, out var type))
            throw new ConfigException([new("connection", name, "one of " + string.Join(", ", Names.Connections))]);
        var init = Names.MhcInits.ToList().FindIndex(n => string.Equals(n, r.GetValue(MhcInit), StringComparison.OrdinalIgnoreCase));
        if (init < 0) throw new ConfigException([new("mhc-init", r.GetValue(MhcInit), "one of " + string.Join(", ", Names.MhcInits))]);
        var copies = new ConnectionConfig { Type = type }.CopiesStreams;
        return new ConnectionConfig
        {
            Type = type, Rate = copies ? r.GetValue(Rate) : 1, Tanh = !r.GetValue(NoTanh),
            Fractions = type == ConnectionType.Frac ? r.GetValue(Fractions) : 1, Dynamic = !r.GetValue(StaticFrac),
            MhcInit = (MhcInit)init, SinkhornIterations = r.GetValue(SinkhornIterations),
        };
    }
}
