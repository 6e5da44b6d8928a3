namespace HcService.Contract.Analysis;

/// <summary>
/// The composite gain of the residual path (docs/hc-math.md section 8.5): with this code's convention H' = A_r^T H, the
/// streams after every mixing, ignoring the writes, are G^T H_0 with G = A_r^(0) A_r^(1) ... A_r^(S-1), and the gain is
/// the largest absolute row sum of G^T (its infinity norm): how much the residual path alone can amplify a signal over
/// the whole depth. 1 for Pre-Norm residual, for HC at init and for any product of doubly stochastic (mHC) matrices.
/// </summary>
public static class CompositeGain
{
    /// <param name="mixings">A_r of every sublayer in order, each n x n as rows of the stream read from.</param>
    public static double Of(IEnumerable<double[][]> mixings)
    {
        double[][]? g = null;
        foreach (var a in mixings)
        {
            var n = a.Length;
            if (a.Any(row => row.Length != n)) throw new ArgumentException($"A_r must be square; got {n} rows of [{string.Join(", ", a.Select(r => r.Length))}]");
            if (g is null) { g = a.Select(row => (double[])row.Clone()).ToArray(); continue; }
            if (g.Length != n) throw new ArgumentException($"A_r of different sizes: {g.Length} and {n}");
            var next = new double[n][];
            for (var i = 0; i < n; i++)
            {
                next[i] = new double[n];
                for (var j = 0; j < n; j++)
                    for (var k = 0; k < n; k++) next[i][j] += g[i][k] * a[k][j];
            }
            g = next;
        }
        if (g is null) return 1.0;   // no mixing at all: the identity
        // Rows of G^T are the columns of G.
        return Enumerable.Range(0, g.Length).Max(j => g.Sum(row => Math.Abs(row[j])));
    }
}
