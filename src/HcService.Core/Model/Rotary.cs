using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Model;

/// <summary>
/// Rotary position embedding (Su et al. 2021), the rotate-half form used by OLMo / GPT-NeoX:
/// x * cos + rotate_half(x) * sin, with frequencies theta^(-2i/K) over the head dimension K.
/// The cos/sin tables are derived data: built lazily per device and sequence length, never in the state dict.
/// </summary>
public sealed class Rotary
{
    readonly int headDim;
    readonly double theta;
    readonly Dictionary<(DeviceType, int, long, ScalarType), (Tensor cos, Tensor sin)> tables = [];

    public Rotary(int headDim, double theta)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"RoPE needs an even head dimension, got {headDim}");
        this.headDim = headDim;
        this.theta = theta;
    }

    /// <summary>Rotates q and k, both [B, H, T, K].</summary>
    public (Tensor q, Tensor k) Apply(Tensor q_BHTK, Tensor k_BHTK)
    {
        var T = q_BHTK.shape[2];
        var (cos, sin) = Tables(q_BHTK.device, T, q_BHTK.dtype);
        return (q_BHTK * cos + RotateHalf(q_BHTK) * sin, k_BHTK * cos + RotateHalf(k_BHTK) * sin);
    }

    static Tensor RotateHalf(Tensor x)
    {
        var halves = x.chunk(2, -1);
        return cat([-halves[1], halves[0]], -1);
    }

    (Tensor cos, Tensor sin) Tables(Device device, long T, ScalarType dtype)
    {
        var key = (device.type, device.index, T, dtype);
        if (!tables.TryGetValue(key, out var t))
        {
            using var scope = NewDisposeScope();
            // Computed in float64 so that every dtype gets correctly rounded tables.
            var invFreq = pow(theta, -arange(0, headDim, 2, dtype: ScalarType.Float64) / headDim);   // [K/2]
            var freqs = outer(arange(T, dtype: ScalarType.Float64), invFreq);                          // [T, K/2]
            var emb = cat([freqs, freqs], -1);                                                         // [T, K]
            // Cached across steps, so detached from whatever dispose scope the caller is in.
            t = (emb.cos().to(dtype).to(device).DetachFromDisposeScope(), emb.sin().to(dtype).to(device).DetachFromDisposeScope());
            tables[key] = t;
        }
        return t;
    }
}
