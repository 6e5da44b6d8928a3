using HcService.Contract.Counting;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Counting;

/// <summary>The CPU peak that MFU is measured against on a CPU worker (the CUDA one is <see cref="HcService.Contract.Counting.DevicePeak"/>).</summary>
public static class CpuPeak
{
    /// <summary>
    /// The CPU's achievable fp32 matmul throughput, measured: the best of five 1024^3 matmuls (2.1 GFLOP each) after a
    /// warm-up. CPUs publish no useful peak for libtorch, so MFU on CPU means "fraction of what a large GEMM reaches here".
    /// </summary>
    public static double MeasureMatmul()
    {
        using var scope = NewDisposeScope();
        var a = randn(1024, 1024);
        var b = randn(1024, 1024);
        a.matmul(b);
        var best = double.MaxValue;
        for (var i = 0; i < 5; i++)
        {
            var sw = Stopwatch.StartNew();
            using (NewDisposeScope()) a.matmul(b).sum().item<float>();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * 1024 * 1024 * 1024 / best;
    }
}
