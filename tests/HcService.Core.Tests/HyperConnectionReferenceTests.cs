using HcService.Contract.Config;
using HcService.Core.Connections;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>
/// One HC module, with random (non-init) parameters, against an independent implementation written with plain
/// arrays and loops straight from docs/hc-math.md sections 3.2 and 3.3. Gradients of the reference come from
/// central finite differences of that loop code in float64, so they share nothing with autograd.
/// </summary>
public class HyperConnectionReferenceTests
{
    const int B = 2, T = 3, D = 6;

    public static TheoryData<ConnectionType, int, bool, NormKind> Cases()
    {
        var data = new TheoryData<ConnectionType, int, bool, NormKind>();
        foreach (var n in new[] { 1, 2, 3, 4 })
        {
            data.Add(ConnectionType.StaticHc, n, true, NormKind.LayerNorm);
            data.Add(ConnectionType.DynamicHc, n, true, NormKind.LayerNorm);
            data.Add(ConnectionType.DynamicHc, n, false, NormKind.LayerNorm);
            data.Add(ConnectionType.DynamicHc, n, true, NormKind.RmsNorm);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OutputsAndGradientsMatchLoopReference(ConnectionType type, int n, bool tanh, NormKind normKind)
    {
        using var scope = NewDisposeScope();
        var config = new ModelConfig { DModel = D, Heads = 1, Norm = normKind, Connection = new() { Type = type, Rate = n, Tanh = tanh } };
        var hc = new HyperConnection("hc", config, sublayerIndex: 1);
        var sublayerNorm = new Norm("norm", D, normKind, 1e-5);
        hc.to(ScalarType.Float64);
        sublayerNorm.to(ScalarType.Float64);

        // Random, non-init parameters: every term of the equations contributes.
        var rng = new Random(1234);
        var parameters = hc.named_parameters().Concat(sublayerNorm.named_parameters().Select(q => ("sublayer." + q.name, q.parameter))).ToList();
        var values = LoopReference.Randomize(parameters, rng);
        var wT = Enumerable.Range(0, D * D).Select(_ => rng.NextDouble() - 0.5).ToArray();   // sublayer T(x) = tanh(x W_T)
        var h = Enumerable.Range(0, B * T * n * D).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var g = Enumerable.Range(0, B * T * n * D).Select(_ => rng.NextDouble() * 2 - 1).ToArray();   // loss = sum(out * g)

        // Module under test, with autograd.
        var hT = tensor(h).reshape(B, T, n, D).requires_grad_(true);
        var wTT = tensor(wT).reshape(D, D);
        var outT = hc.Forward(hT, sublayerNorm, x => x.matmul(wTT).tanh());
        (outT * tensor(g).reshape(B, T, n, D)).sum().backward();

        // Reference forward in loops; gradients by central differences of the reference loss.
        var reference = new Reference(n, tanh, normKind, type == ConnectionType.DynamicHc, wT);
        LoopReference.AssertOutputAndGradients(reference.Forward, h, g, values, parameters, outT, hT);
    }

    /// <summary>The equations, one token and one stream at a time.</summary>
    sealed class Reference(int n, bool tanh, NormKind normKind, bool dynamic, double[] wT)
    {
        public double[] Forward(double[] h, Dictionary<string, double[]> p)
        {
            var beta0 = p["static_beta"];     // [n]
            var alpha0 = p["static_alpha"];   // [n, n+1]: column 0 = A_m, columns 1..n = A_r
            var output = new double[h.Length];
            for (var bt = 0; bt < B * T; bt++)
            {
                double H(int i, int d) => h[(bt * n + i) * D + d];
                var alpha = new double[n, n + 1];
                var beta = new double[n];
                for (var i = 0; i < n; i++)
                {
                    for (var m = 0; m <= n; m++) alpha[i, m] = alpha0[i * (n + 1) + m];
                    beta[i] = beta0[i];
                    if (!dynamic) continue;
                    // Row i of the dynamic weights comes from stream i's normalised vector (eqs. 10-13).
                    var hn = Normalize(Enumerable.Range(0, D).Select(d => H(i, d)).ToArray(), p.GetValueOrDefault("norm.weight"));
                    var proj = p["dynamic_proj"];   // [n+2, D]: rows 0..n = W_m | W_r, row n+1 = W_b
                    for (var m = 0; m <= n + 1; m++)
                    {
                        var s = 0.0;
                        for (var d = 0; d < D; d++) s += hn[d] * proj[m * D + d];
                        if (tanh) s = Math.Tanh(s);
                        if (m <= n) alpha[i, m] += p["dynamic_alpha_scale"][0] * s;
                        else beta[i] += p["dynamic_beta_scale"][0] * s;
                    }
                }
                // x = A_m^T H  (eq. 3)
                var x = new double[D];
                for (var d = 0; d < D; d++) for (var i = 0; i < n; i++) x[d] += alpha[i, 0] * H(i, d);
                // y = T(norm(x)) with T(u) = tanh(u W_T)
                var xn = Normalize(x, p.GetValueOrDefault("sublayer.weight"));
                var y = new double[D];
                for (var e = 0; e < D; e++)
                {
                    var s = 0.0;
                    for (var d = 0; d < D; d++) s += xn[d] * wT[d * D + e];
                    y[e] = Math.Tanh(s);
                }
                // H_out_j = B_j y + sum_i A_r[i, j] H_i  (eqs. 4, 5)
                for (var j = 0; j < n; j++)
                    for (var d = 0; d < D; d++)
                    {
                        var v = beta[j] * y[d];
                        for (var i = 0; i < n; i++) v += alpha[i, 1 + j] * H(i, d);
                        output[(bt * n + j) * D + d] = v;
                    }
            }
            return output;
        }

        double[] Normalize(double[] v, double[]? weight) => LoopReference.Normalize(v, weight, normKind);
    }
}
