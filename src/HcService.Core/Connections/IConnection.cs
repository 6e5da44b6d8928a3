using HcService.Contract.Config;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

// Axes: B batch, T time, N streams (expansion rate n), D width.

/// <summary>
/// How one sublayer T is wired into the trunk. Residual is the special case of hyper-connections
/// (docs/hc-math.md section 5.1), so the trunk code is the same for every type: it expands once after the embedding,
/// calls <see cref="Forward"/> for each sublayer, and reduces once before the final norm.
/// </summary>
public interface IConnection
{
    /// <summary>
    /// One sublayer step. <paramref name="h"/> is the trunk state ([B, T, D] for residual and Post-Norm,
    /// [B, T, N, D] for HC); <paramref name="norm"/> is the sublayer's norm and <paramref name="sublayer"/> its body
    /// (attention or MLP, [B, T, D] -> [B, T, D]). Returns the new trunk state.
    /// </summary>
    Tensor Forward(Tensor h, Norm norm, Func<Tensor, Tensor> sublayer);
}

/// <summary>The trunk's stream layout: expand after the embedding, reduce before the final norm.</summary>
public static class Streams
{
    /// <summary>HC, mHC, mHC-lite: n copies along a new stream axis, [B, T, D] -> [B, T, N, D] (docs/hc-math.md section
    /// 3.1). Frac-Connections: the m fractions, [B, T, D] -> [B, T, M, D/M] (a view). Otherwise unchanged.</summary>
    public static Tensor Expand(Tensor h_BTD, ConnectionConfig c) =>
        c.CopiesStreams ? h_BTD.unsqueeze(2).expand(h_BTD.shape[0], h_BTD.shape[1], c.Rate, h_BTD.shape[2])
        : c.IsFrac ? h_BTD.reshape(h_BTD.shape[0], h_BTD.shape[1], c.Fractions, h_BTD.shape[2] / c.Fractions)
        : h_BTD;

    /// <summary>Copies: the SUM over streams (not the mean; docs/hc-math.md section 3.1), [B, T, N, D] -> [B, T, D].
    /// Fractions: concatenated back, [B, T, M, D/M] -> [B, T, D]. Otherwise unchanged.</summary>
    public static Tensor Reduce(Tensor h, ConnectionConfig c) =>
        c.CopiesStreams ? h.sum(2) : c.IsFrac ? h.reshape(h.shape[0], h.shape[1], h.shape[2] * h.shape[3]) : h;
}

/// <summary>Builds the connection module of the configured type around one sublayer.</summary>
public static class ConnectionFactory
{
    /// <summary>The connection module for sublayer <paramref name="sublayerIndex"/> (k = 2 * block + {0 attention, 1 MLP}).</summary>
    public static IConnection Create(string name, ModelConfig model, int sublayerIndex) => model.Connection.Type switch
    {
        ConnectionType.Residual => new ResidualConnection(name),
        ConnectionType.PostNorm => new PostNormConnection(name),
        ConnectionType.StaticHc or ConnectionType.DynamicHc => new HyperConnection(name, model, sublayerIndex),
        ConnectionType.Frac => new FracConnection(name, model),
        ConnectionType.Mhc => new MhcConnection(name, model, sublayerIndex),
        ConnectionType.MhcLite => new MhcLiteConnection(name, model, sublayerIndex),
        _ => throw new ArgumentOutOfRangeException(nameof(model), model.Connection.Type, "unknown connection type"),
    };
}

/// <summary>Pre-Norm residual: h + T(norm(h)). Equal to HC with n = 1 and HC = [[0, 1], [1, 1]].</summary>
public sealed class ResidualConnection : nn.Module, IConnection
{
    public ResidualConnection(string name) : base(name) => RegisterComponents();

    public Tensor Forward(Tensor h, Norm norm, Func<Tensor, Tensor> sublayer)
    {
        using var scope = NewDisposeScope();
        return (h + sublayer(norm.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>Post-Norm residual (the original Transformer): norm(h + T(h)).</summary>
public sealed class PostNormConnection : nn.Module, IConnection
{
    public PostNormConnection(string name) : base(name) => RegisterComponents();

    public Tensor Forward(Tensor h, Norm norm, Func<Tensor, Tensor> sublayer)
    {
        using var scope = NewDisposeScope();
        return norm.forward(h + sublayer(h)).MoveToOuterDisposeScope();
    }
}
