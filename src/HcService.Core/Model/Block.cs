using HcService.Contract.Config;
using HcService.Core.Connections;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Model;

/// <summary>
/// One transformer block: two sublayers (attention, then MLP or MoE), each wired into the trunk by its own
/// connection. For Pre-Norm residual this reads h = h + attn(norm(h)); h = h + mlp(norm(h)).
/// </summary>
public sealed class Block : nn.Module
{
    readonly Norm attn_norm;
    readonly Attention attn;
    readonly nn.Module attn_conn;
    readonly Norm ff_norm;
    readonly SwiGlu? ff;
    readonly GeluMlp? mlp;
    readonly MoeFeedForward? moe;
    readonly nn.Module ff_conn;
    readonly double dropout;

    public Block(string name, ModelConfig c, int layer) : base(name)
    {
        attn_norm = new Norm("attn_norm", c.DModel, c.Norm, c.NormEps);
        attn = new Attention("attn", c);
        attn_conn = (nn.Module)ConnectionFactory.Create("attn_conn", c, 2 * layer);
        ff_norm = new Norm("ff_norm", c.DModel, c.Norm, c.NormEps);
        if (c.IsMoe) moe = new MoeFeedForward("moe", c.DModel, c.Moe);
        else if (c.IsVision) mlp = new GeluMlp("mlp", c.DModel, c.MlpHidden);
        else ff = new SwiGlu("ff", c.DModel, c.MlpHidden);
        ff_conn = (nn.Module)ConnectionFactory.Create("ff_conn", c, 2 * layer + 1);
        dropout = c.Dropout;
        RegisterComponents();
    }

    internal Norm AttnNorm => attn_norm;
    internal Norm FfNorm => ff_norm;
    internal Attention Attn => attn;
    internal SwiGlu? Mlp => ff;
    internal GeluMlp? VitMlp => mlp;
    internal MoeFeedForward? Moe => moe;
    public IConnection AttnConnection => (IConnection)attn_conn;
    public IConnection MlpConnection => (IConnection)ff_conn;

    /// <summary>Runs both sublayers; MoE statistics go to <paramref name="moeStats"/>. <paramref name="connectionInput"/>,
    /// when given, sees the trunk state entering each connection (0 attention, 1 MLP): the analysis of HC's dynamic
    /// weights reads them there, so it needs no copy of this wiring.</summary>
    public Tensor Forward(Tensor h, Action<MoeStats> moeStats, Action<int, Tensor>? connectionInput = null)
    {
        // Block recomputation keeps only the block's input (MoE is refused with it: its auxiliary losses leave the block).
        if (recompute == HcService.Contract.Jobs.RecomputeMode.Block && connectionInput is null && moe is null && Connections.Recompute.Applies(training))
            return Connections.Recompute.Checkpoint(x => Sublayers(x, moeStats, null), h, [.. parameters()]);
        return Sublayers(h, moeStats, connectionInput);
    }

    /// <summary>What recompute = none, hc or block runs: every sublayer's connection.</summary>
    public HcService.Contract.Jobs.RecomputeMode Recompute
    {
        set
        {
            recompute = value;
            foreach (var c in new[] { attn_conn, ff_conn }) if (c is IRecomputable r) r.Recompute = value;
        }
    }
    HcService.Contract.Jobs.RecomputeMode recompute;

    /// <summary>The block's two sublayers for the model's stream replay (recompute = hc with n copies of the state,
    /// <see cref="StreamReplay"/>), which runs the connections of every block itself.</summary>
    internal IEnumerable<StreamReplay.Step> Steps(Action<MoeStats> moeStats) =>
    [
        new((IStreamMixing)attn_conn, attn_norm, x => Dropout(attn.forward(x))),
        new((IStreamMixing)ff_conn, ff_norm, x => Dropout(FeedForward(x, moeStats))),
    ];

    Tensor Sublayers(Tensor h, Action<MoeStats> moeStats, Action<int, Tensor>? connectionInput)
    {
        connectionInput?.Invoke(0, h);
        h = AttnConnection.Forward(h, attn_norm, x => Dropout(attn.forward(x)));
        connectionInput?.Invoke(1, h);
        return MlpConnection.Forward(h, ff_norm, x => Dropout(FeedForward(x, moeStats)));
    }

    Tensor FeedForward(Tensor x, Action<MoeStats> moeStats)
    {
        if (ff is not null) return ff.forward(x);
        if (mlp is not null) return mlp.forward(x);
        var (y, stats) = moe!.Forward(x);
        moeStats(stats);
        return y;
    }

    Tensor Dropout(Tensor y) => dropout > 0 && training ? nn.functional.dropout(y, dropout, training) : y;
}
