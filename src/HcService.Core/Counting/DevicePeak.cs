using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Counting;

/// <summary>The FLOP/s that MFU is measured against.</summary>
public static class DevicePeak
{
    /// <summary>NVIDIA H100/H200 dense bf16 tensor-core peak (989 TFLOP/s), the default for CUDA.</summary>
    public const double CudaBf16 = 989e12;

    /// <summary>
    /// The CPU's achievable fp32 matmul throughput, measured: the best of five 1024^3 matmuls (2.1 GFLOP each) after a
    /// warm-up. CPUs publish no useful peak for libtorch, so MFU on CPU means "fraction of what a large GEMM reaches here".
    /// </summary>
    public static double MeasureCpuMatmul()
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
