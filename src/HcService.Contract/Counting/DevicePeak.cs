namespace HcService.Contract.Counting;

/// <summary>The FLOP/s that MFU is measured against. The CPU figure is measured by the training core
/// (<c>HcService.Core.Counting.CpuPeak</c>), since CPUs publish no useful peak for libtorch.</summary>
public static class DevicePeak
{
    /// <summary>NVIDIA H100/H200 dense bf16 tensor-core peak (989 TFLOP/s), the default for CUDA.</summary>
    public const double CudaBf16 = 989e12;
}
