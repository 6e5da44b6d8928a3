using HcService.Contract.Config;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>What the connection reference tests share: random non-init parameters, the norms written in loops, central
/// finite differences of a loop reference, and the check of a module's output and gradients against it.</summary>
static class LoopReference
{
    /// <summary>Every parameter set to random values in [-0.8, 0.8), scales (names ending "scale") in [0.7, 1.0), so
    /// that every term of the equations contributes; the values by parameter name.</summary>
    public static Dictionary<string, double[]> Randomize(IEnumerable<(string Name, Parameter Param)> parameters, Random rng)
    {
        var values = new Dictionary<string, double[]>();
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
        {
            var v = Enumerable.Range(0, (int)p.numel()).Select(_ => rng.NextDouble() * 1.6 - 0.8).ToArray();
            if (name.EndsWith("scale")) v = v.Select(_ => 0.7 + 0.3 * rng.NextDouble()).ToArray();
            p.copy_(tensor(v).reshape(p.shape));
            values[name] = v;
        }
        return values;
    }

    /// <summary>LayerNorm without affine, or RMSNorm with <paramref name="weight"/>, over one vector (eps 1e-5).</summary>
    public static double[] Normalize(double[] v, double[]? weight, NormKind kind)
    {
        const double eps = 1e-5;
        if (kind == NormKind.LayerNorm)
        {
            var mean = v.Average();
            var variance = v.Select(a => (a - mean) * (a - mean)).Average();
            return v.Select(a => (a - mean) / Math.Sqrt(variance + eps)).ToArray();
        }
        var ms = v.Select(a => a * a).Average();
        return v.Select((a, d) => a / Math.Sqrt(ms + eps) * weight![d]).ToArray();
    }

    /// <summary>The module's output against the reference's, and its autograd gradients of loss = sum(output * g) with
    /// respect to the input and every parameter against central finite differences of the reference loss.</summary>
    public static void AssertOutputAndGradients(Func<double[], Dictionary<string, double[]>, double[]> reference, double[] h, double[] g,
        Dictionary<string, double[]> values, IEnumerable<(string Name, Parameter Param)> parameters, Tensor output, Tensor input)
    {
        AssertClose(reference(h, values), output.detach().flatten().data<double>().ToArray(), "output");
        double Loss(double[] hh, Dictionary<string, double[]> pv) => reference(hh, pv).Zip(g, (a, b) => a * b).Sum();
        AssertClose(FiniteDiff(h, x => Loss(x, values)), input.grad!.flatten().data<double>().ToArray(), "dL/dH");
        foreach (var (name, p) in parameters)
        {
            var fd = FiniteDiff(values[name], x => Loss(h, new Dictionary<string, double[]>(values) { [name] = x }));
            AssertClose(fd, p.grad!.flatten().data<double>().ToArray(), $"dL/d{name}");
        }
    }

    static double[] FiniteDiff(double[] x, Func<double[], double> f, double eps = 1e-6)
    {
        var grad = new double[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            var plus = (double[])x.Clone(); plus[i] += eps;
            var minus = (double[])x.Clone(); minus[i] -= eps;
            grad[i] = (f(plus) - f(minus)) / (2 * eps);
        }
        return grad;
    }

    static void AssertClose(double[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = Math.Max(1.0, expected.Max(Math.Abs));
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * scale, $"{what}[{i}]: reference {expected[i]:G9}, module {actual[i]:G9}");
    }
}
