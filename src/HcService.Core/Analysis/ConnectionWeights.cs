using HcService.Contract.Analysis;
using HcService.Core.Connections;
using HcService.Core.Model;
using static TorchSharp.torch;

namespace HcService.Core.Analysis;

/// <summary>
/// One connection's weights in hyper-connection form (docs/hc-math.md section 3.2), with this codebase's index convention:
/// <c>Ar[i][j]</c> is how much of stream i flows into stream j (H'_j = sum_i A_r[i, j] H_i, i.e. H' = A_r^T H),
/// <c>Am[i]</c> how much of stream i the sublayer reads (x = A_m^T H), <c>B[j]</c> how much of the sublayer's output
/// stream j receives (H_out = B^T y + H'). Pre-Norm residual is the case n = 1 with every weight 1 (docs/hc-math.md section 5.1).
/// </summary>
/// <param name="B">Write weights [n].</param>
/// <param name="Am">Read weights [n].</param>
/// <param name="Ar">Stream mixing [n][n], rows = the stream read from, columns = the stream written to.</param>
public sealed record ConnectionWeights(double[] B, double[] Am, double[][] Ar)
{
    /// <summary>The expansion rate n.</summary>
    public int Rate => B.Length;

    /// <summary>Pre-Norm residual h + T(norm(h)) as an HC with n = 1: B = A_m = A_r = 1.</summary>
    public static ConnectionWeights Residual => new([1.0], [1.0], [[1.0]]);

    /// <summary>Throws unless A_m is [n] and A_r is [n][n] for n = |B| >= 1, naming <paramref name="what"/> and the lengths found.</summary>
    public void EnsureShape(string what)
    {
        var n = B.Length;
        if (n < 1 || Am.Length != n || Ar.Length != n || Ar.Any(row => row.Length != n))
            throw new ArgumentException($"{what}: B has {n} entries, A_m {Am.Length}, A_r {Ar.Length} rows of [{string.Join(", ", Ar.Select(r => r.Length))}]; expected n >= 1, A_m [n] and A_r [n][n]");
    }

    internal static ConnectionWeights FromTensors(Tensor b_N, Tensor am_N, Tensor ar_NN)
    {
        var n = (int)b_N.shape[0];
        var ar = ToDoubles(ar_NN);
        return new(ToDoubles(b_N), ToDoubles(am_N), [.. Enumerable.Range(0, n).Select(i => ar[(i * n)..((i + 1) * n)])]);
    }

    internal static double[] ToDoubles(Tensor t)
    {
        using var d = t.detach().cpu().to_type(ScalarType.Float64).contiguous();
        return d.data<double>().ToArray();
    }
}

/// <summary>The learned static connection of one sublayer (for DHC: the static part that the dynamic terms are added to).</summary>
/// <param name="Sublayer">k = 2 * block + (0 attention, 1 MLP).</param>
/// <param name="Name">The connection's state-dict prefix, e.g. "blocks.1.ff_conn".</param>
/// <param name="Static">B, A_m, A_r; residual reports n = 1 and ones.</param>
/// <param name="AlphaScale">DHC's learned s_a (scales the dynamic A_m and A_r); null otherwise.</param>
/// <param name="BetaScale">DHC's learned s_b (scales the dynamic B); null otherwise.</param>
public sealed record SublayerConnection(int Sublayer, string Name, ConnectionWeights Static, double? AlphaScale, double? BetaScale)
{
    /// <summary>
    /// Every sublayer's static connection, in sublayer order. Post-Norm is rejected: norm(h + T(h)) rescales all
    /// earlier outputs together, token by token, so it has no fixed weights to report or unfold.
    /// </summary>
    public static IReadOnlyList<SublayerConnection> Of(LanguageModel model)
    {
        using var scope = NewDisposeScope();
        return [.. model.Connections.Select((conn, k) => conn switch
        {
            IStreamMixing mixing => FromMixing(k, mixing),
            ResidualConnection => new SublayerConnection(k, NameOf(k), ConnectionWeights.Residual, null, null),
            _ => throw new ArgumentException($"sublayer {k} has a {conn.GetType().Name} ({model.Config.Connection.Label}): only residual and stream-mixing connections (HC, mHC, mHC-lite) have n x n stream weights to analyse"),
        })];
    }

    static SublayerConnection FromMixing(int k, IStreamMixing mixing)
    {
        var (b, am, ar) = mixing.StaticWeights;
        var scales = (mixing as HyperConnection)?.Scales;
        return new(k, NameOf(k), ConnectionWeights.FromTensors(b, am, ar), scales?.Alpha, scales?.Beta);
    }

    internal static string NameOf(int k) => $"blocks.{k / 2}.{(k % 2 == 0 ? "attn_conn" : "ff_conn")}";
}
