using HcService.Contract.Data;
using static TorchSharp.torch;

namespace HcService.Core.Data;

/// <summary>
/// Training batches of an image split in a deterministic shuffled order, with deterministic augmentation: epoch e visits
/// the images in a Fisher-Yates permutation drawn from SplitMix64(seed, e) (as <see cref="WindowSampler"/> does for
/// windows); each image's random crop (zero padding of size / 8, then a crop back to size) and horizontal flip are drawn
/// from SplitMix64(seed, epoch, index), and a batch's Mixup weight from SplitMix64(seed, epoch, first index). Every random
/// number is a function of the seed and the position, so a run resumed from a checkpoint's position draws exactly what it
/// would have drawn (no generator state to save). Pixels are scaled to [0, 1] and standardised with the training split's
/// mean and standard deviation.
/// </summary>
public sealed class ImageBatcher
{
    readonly ImageSplit data;
    readonly ulong seed;
    readonly bool augment;
    readonly double mixup;
    readonly int pad;
    int[] order = [];
    long orderEpoch = -1;

    public SamplerPosition Position { get; private set; }
    /// <summary>The standardisation every split of the dataset gets (from the training split).</summary>
    public (float Mean, float Std) Normalisation { get; }

    /// <param name="augment">Random crops and flips.</param>
    /// <param name="mixup">Mixup's alpha (0: off): targets become distributions over the classes.</param>
    public ImageBatcher(ImageSplit data, long seed, bool augment, double mixup, SamplerPosition start = default)
    {
        this.data = data;
        this.seed = (ulong)seed;
        this.augment = augment;
        this.mixup = mixup;
        pad = Math.Max(1, data.Size / 8);
        Position = start;
        Normalisation = Statistics(data);
    }

    /// <summary>Mean and standard deviation of every pixel of a split, scaled to [0, 1].</summary>
    public static (float Mean, float Std) Statistics(ImageSplit split)
    {
        long sum = 0, squares = 0;
        foreach (var p in split.Pixels) { sum += p; squares += p * p; }
        double n = split.Pixels.Length, mean = sum / n / 255.0;
        var variance = squares / n / (255.0 * 255.0) - mean * mean;
        return ((float)mean, (float)Math.Sqrt(Math.Max(variance, 1e-12)));
    }

    /// <summary>The next <paramref name="batch"/> images [B, C, S, S] and their targets: class ids [B] (int64), or with Mixup
    /// distributions [B, classes] (float).</summary>
    public (Tensor Images, Tensor Targets) Next(int batch, Device device)
    {
        var (C, S) = (data.Channels, data.Size);
        var pixels = new float[(long)batch * C * S * S];
        var labels = new int[batch];
        var first = Position;
        for (var b = 0; b < batch; b++)
        {
            if (Position.Index >= data.Count) Position = new SamplerPosition(Position.Epoch + 1, 0);
            var image = Order(Position.Epoch)[Position.Index];
            labels[b] = data.Labels[image];
            var state = Mix(seed, (ulong)Position.Epoch, (ulong)Position.Index);
            var (dx, dy, flip) = augment
                ? ((int)(WindowSampler.SplitMix64(ref state) % (ulong)(2 * pad + 1)) - pad,
                   (int)(WindowSampler.SplitMix64(ref state) % (ulong)(2 * pad + 1)) - pad,
                   (WindowSampler.SplitMix64(ref state) & 1) == 1)
                : (0, 0, false);
            Write(image, dx, dy, flip, pixels.AsSpan(b * C * S * S, C * S * S));
            Position = Position with { Index = Position.Index + 1 };
        }
        using var scope = NewDisposeScope();
        var images = tensor(pixels, [batch, C, S, S]);
        Tensor targets;
        if (mixup > 0)
        {
            // Mixup (Zhang et al. 2018) with the batch in reverse order: x = l x_i + (1 - l) x_{B-1-i}, the same for the targets.
            var state = Mix(seed ^ 0x6D69787570UL, (ulong)first.Epoch, (ulong)first.Index);
            var lambda = (float)Beta(mixup, ref state);
            var onehot = nn.functional.one_hot(tensor(labels.Select(l => (long)l).ToArray()), data.Classes).to_type(ScalarType.Float32);
            images = images * lambda + images.flip(0) * (1 - lambda);
            targets = onehot * lambda + onehot.flip(0) * (1 - lambda);
        }
        else targets = tensor(labels.Select(l => (long)l).ToArray());
        return (images.to(device).MoveToOuterDisposeScope(), targets.to(device).MoveToOuterDisposeScope());
    }

    /// <summary>A split's images in order, without augmentation, in batches of <paramref name="batch"/>: [n, C, S, S] and
    /// the class ids [n].</summary>
    public IEnumerable<(Tensor Images, Tensor Labels)> Sequential(ImageSplit split, int batch, Device device)
    {
        var per = split.PixelsPerImage;
        for (var start = 0; start < split.Count; start += batch)
        {
            var n = Math.Min(batch, split.Count - start);
            var pixels = new float[(long)n * per];
            for (var i = 0; i < n; i++) Standardise(split.Pixels.AsSpan((start + i) * per, per), pixels.AsSpan(i * per, per));
            using var scope = NewDisposeScope();
            var images = tensor(pixels, [n, split.Channels, split.Size, split.Size]).to(device);
            var labels = tensor(split.Labels.AsSpan(start, n).ToArray().Select(l => (long)l).ToArray()).to(device);
            yield return (images.MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope());
        }
    }

    void Standardise(ReadOnlySpan<byte> source, Span<float> target)
    {
        var (mean, std) = Normalisation;
        for (var i = 0; i < source.Length; i++) target[i] = (source[i] / 255f - mean) / std;
    }

    /// <summary>Image <paramref name="image"/> shifted by (dx, dy) (what a crop of the zero-padded image at that offset
    /// shows; padding is 0 before standardisation) and flipped left-right, standardised into <paramref name="target"/>.</summary>
    void Write(int image, int dx, int dy, bool flip, Span<float> target)
    {
        var (C, S) = (data.Channels, data.Size);
        var source = data.Pixels.AsSpan(image * data.PixelsPerImage, data.PixelsPerImage);
        var (mean, std) = Normalisation;
        var zero = (0f - mean) / std;
        for (var c = 0; c < C; c++)
            for (var y = 0; y < S; y++)
                for (var x = 0; x < S; x++)
                {
                    var (sy, sx) = (y + dy, (flip ? S - 1 - x : x) + dx);
                    target[(c * S + y) * S + x] = sy < 0 || sy >= S || sx < 0 || sx >= S ? zero : (source[(c * S + sy) * S + sx] / 255f - mean) / std;
                }
    }

    int[] Order(long epoch)
    {
        if (orderEpoch == epoch) return order;
        var perm = new int[data.Count];
        for (var i = 0; i < perm.Length; i++) perm[i] = i;
        var state = seed ^ (0x9E3779B97F4A7C15UL * (ulong)(epoch + 1));
        for (var i = perm.Length - 1; i > 0; i--)
        {
            var j = (int)(WindowSampler.SplitMix64(ref state) % (ulong)(i + 1));
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        order = perm;
        orderEpoch = epoch;
        return order;
    }

    static ulong Mix(ulong seed, ulong epoch, ulong index)
    {
        var state = seed ^ (0xD1B54A32D192ED03UL * (epoch + 1)) ^ (0x8CB92BA72F3D8DD7UL * (index + 1));
        WindowSampler.SplitMix64(ref state);
        return state;
    }

    static double Uniform(ref ulong state) => ((WindowSampler.SplitMix64(ref state) >> 11) + 0.5) / (1UL << 53);   // (0, 1)

    /// <summary>Beta(alpha, alpha) as X / (X + Y) with X, Y ~ Gamma(alpha), from their logarithms: the sigmoid of
    /// log X - log Y, which neither underflows nor divides 0 by 0 at a small alpha.</summary>
    internal static double Beta(double alpha, ref ulong state)
    {
        var d = LogGamma(alpha, ref state) - LogGamma(alpha, ref state);
        return 1 / (1 + Math.Exp(-d));
    }

    /// <summary>log of a Gamma(alpha, 1) draw; for alpha &lt; 1 log Gamma(alpha + 1) + log(U) / alpha.</summary>
    static double LogGamma(double alpha, ref ulong state) =>
        alpha < 1 ? Math.Log(Gamma(alpha + 1, ref state)) + Math.Log(Uniform(ref state)) / alpha : Math.Log(Gamma(alpha, ref state));

    /// <summary>Gamma(alpha, 1) for alpha >= 1 by Marsaglia and Tsang (2000).</summary>
    static double Gamma(double alpha, ref ulong state)
    {
        var d = alpha - 1.0 / 3;
        var c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            // A standard normal by Box-Muller.
            var z = Math.Sqrt(-2 * Math.Log(Uniform(ref state))) * Math.Cos(2 * Math.PI * Uniform(ref state));
            var v = Math.Pow(1 + c * z, 3);
            if (v <= 0) continue;
            var u = Uniform(ref state);
            if (Math.Log(u) < 0.5 * z * z + d - d * v + d * Math.Log(v)) return d * v;
        }
    }
}
