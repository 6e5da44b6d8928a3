using HcService.Contract.Analysis;
namespace HcService.Core.Analysis;

/// <summary>
/// The unfolded connection matrix (docs/hc-math.md section 8.2): how much of each source's output reaches each reader's input
/// when the stream recursion is unrolled. Row k is the reader: sublayer k = 0 .. S-1 (S = 2L), and row S the output,
/// i.e. the hidden state handed to the final norm (the sum over streams). Column j + 1 is the writer: column 0 the
/// embedding (j = -1, which enters every stream with weight 1), column j + 1 sublayer j's output y_j. So
/// <c>Values[k][j + 1] = c(k, j)</c> with x_k = sum over j &lt; k of c(k, j) y_j (+ c(k, -1) h_0).
/// Entries with j >= k (a sublayer cannot read itself or later ones) are 0, so the matrix is lower triangular
/// including the diagonal; for Pre-Norm residual every other entry is 1. The output row of HC at init is n, not 1:
/// the reduce is a sum over n identical streams (the final norm removes the factor).
/// </summary>
/// <param name="Values">[S + 1][S + 1]: rows = readers, columns = writers.</param>
/// <param name="ReadingLabels">Row labels: "0" .. "S-1", then "out".</param>
/// <param name="WritingLabels">Column labels: "emb", then "0" .. "S-1".</param>
/// <param name="Source">Which weights were unfolded ("static", or "dynamic, mean over 512 tokens").</param>
public sealed record ConnectionMatrix(double[][] Values, string[] ReadingLabels, string[] WritingLabels, string Source)
{
    /// <summary>
    /// Unrolls the recursion for connections given in sublayer order. With this codebase's conventions
    /// (<see cref="ConnectionWeights"/>: H' = A_r^T H, x = A_m^T H, H_out = B^T y + H') the stream coefficients v of
    /// one source evolve as v &lt;- A_r^T v through every later connection, so
    ///   c(k, j) = B_j^T A_r^(j+1) A_r^(j+2) ... A_r^(k-1) A_m^(k)      (the paper's product, as written)
    ///   c(k, -1) = 1^T A_r^(0) ... A_r^(k-1) A_m^(k),   and the output row reads with 1 instead of A_m.
    /// A brute-force test runs the real HC modules on indicator vectors and reads these numbers off.
    /// </summary>
    public static ConnectionMatrix Unfold(IReadOnlyList<ConnectionWeights> connections, string source)
    {
        if (connections.Count == 0) throw new ArgumentException("no connections to unfold", nameof(connections));
        var n = connections[0].Rate;
        for (var k = 0; k < connections.Count; k++)
        {
            connections[k].EnsureShape($"connection of sublayer {k}");
            if (connections[k].Rate != n)
                throw new ArgumentException($"every connection needs the same expansion rate: sublayer 0 has n = {n}, sublayer {k} has n = {connections[k].Rate}", nameof(connections));
        }
        var S = connections.Count;
        var values = new double[S + 1][];
        for (var k = 0; k <= S; k++) values[k] = new double[S + 1];
        var ones = Enumerable.Repeat(1.0, n).ToArray();
        for (var j = -1; j < S; j++)
        {
            // v: the weight of source j in each stream just after it was written (the embedding: 1 in every stream).
            var v = j < 0 ? ones : (double[])connections[j].B.Clone();
            for (var k = j + 1; k <= S; k++)
            {
                var read = k < S ? connections[k].Am : ones;
                values[k][j + 1] = Dot(read, v);
                if (k < S) v = MixStreams(connections[k].Ar, v);
            }
        }
        string[] reading = [.. Enumerable.Range(0, S).Select(k => $"{k}"), "out"];
        string[] writing = ["emb", .. Enumerable.Range(0, S).Select(j => $"{j}")];
        return new(values, reading, writing, source);
    }

    /// <summary>c(k, j) by sublayer indices (j = -1 the embedding, k = S the output).</summary>
    public double At(int k, int j) => Values[k][j + 1];

    static double Dot(double[] a, double[] b)
    {
        var s = 0.0;
        for (var i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>v'_j = sum_i A_r[i, j] v_i, i.e. v' = A_r^T v: the streams after H' = A_r^T H.</summary>
    static double[] MixStreams(double[][] ar, double[] v)
    {
        var n = v.Length;
        var mixed = new double[n];
        for (var j = 0; j < n; j++)
            for (var i = 0; i < n; i++) mixed[j] += ar[i][j] * v[i];
        return mixed;
    }
}
