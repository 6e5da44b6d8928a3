using HcService.Contract.Data;
namespace HcService.Core.Data;

/// <summary>Where a sampler is in its stream: epoch and index into that epoch's order. Saved in checkpoints.</summary>
public readonly record struct SamplerPosition(long Epoch, long Index);

/// <summary>
/// Fixed-length training windows in a deterministic shuffled order. The stream is cut into W = (N - 1) / T
/// non-overlapping windows of T + 1 tokens (inputs and next-token targets share T tokens); epoch e visits them in a
/// Fisher-Yates permutation drawn from SplitMix64(seed, e), so the order depends only on the seed and the data
/// length, never on the runtime's Random.
/// </summary>
public sealed class WindowSampler
{
    readonly TokenDataset data;
    readonly int seqLen;
    readonly ulong seed;
    long[] order = [];
    long orderEpoch = -1;

    public long Windows { get; }
    public SamplerPosition Position { get; private set; }

    public WindowSampler(TokenDataset data, int seqLen, long seed, SamplerPosition start = default)
    {
        this.data = data;
        this.seqLen = seqLen;
        this.seed = (ulong)seed;
        Windows = (data.Length - 1) / seqLen;
        if (Windows < 1) throw new InvalidDataException($"{data.Path}: {data.Length} tokens cannot make one window of {seqLen + 1}");
        Position = start;
    }

    /// <summary>The next <paramref name="batch"/> windows as a [batch, seqLen + 1] row-major array.</summary>
    public long[] Next(int batch)
    {
        var result = new long[batch * (seqLen + 1)];
        for (var b = 0; b < batch; b++)
        {
            if (Position.Index >= Windows) Position = new SamplerPosition(Position.Epoch + 1, 0);
            var window = Order(Position.Epoch)[Position.Index];
            data.Read(window * seqLen, result.AsSpan(b * (seqLen + 1), seqLen + 1));
            Position = Position with { Index = Position.Index + 1 };
        }
        return result;
    }

    long[] Order(long epoch)
    {
        if (orderEpoch == epoch) return order;
        var perm = new long[Windows];
        for (long i = 0; i < Windows; i++) perm[i] = i;
        var state = seed ^ (0x9E3779B97F4A7C15UL * (ulong)(epoch + 1));
        for (var i = Windows - 1; i > 0; i--)
        {
            var j = (long)(SplitMix64(ref state) % (ulong)(i + 1));
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        order = perm;
        orderEpoch = epoch;
        return order;
    }

    /// <summary>One step of SplitMix64 (Steele et al. 2014): the project's seeded, runtime-independent random numbers.</summary>
    internal static ulong SplitMix64(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Validation windows: the first <paramref name="maxTokens"/> tokens cut in order (no shuffling), so every
    /// evaluation of a run sees exactly the same tokens.</summary>
    public static IEnumerable<long[]> Sequential(TokenDataset data, int seqLen, long maxTokens, int batch)
    {
        var windows = Math.Min((data.Length - 1) / seqLen, Math.Max(1, maxTokens / seqLen));
        for (long w = 0; w < windows; w += batch)
        {
            var n = (int)Math.Min(batch, windows - w);
            var result = new long[n * (seqLen + 1)];
            for (var b = 0; b < n; b++) data.Read((w + b) * seqLen, result.AsSpan(b * (seqLen + 1), seqLen + 1));
            yield return result;
        }
    }
}
