namespace HcService.Cli.Terminal;

/// <summary>
/// Training throughput as people want to read it: tokens per second over the last <see cref="Window"/> of wall time (one
/// slow or fast step, a validation pause or a checkpoint moves it a little, not to 393 or 12,184), and the time left at
/// that rate. Samples are (seconds on a monotonic clock, tokens trained so far); a count that goes back (a resumed run
/// replaying steps) starts the estimate over.
/// </summary>
public sealed class Throughput(TimeSpan window)
{
    /// <summary>An estimate needs samples spanning this long, or <see cref="MinSamples"/> of them (fast steps): before
    /// that there is none (no "ETA 00:00:00" at step 1).</summary>
    public static readonly TimeSpan MinSpan = TimeSpan.FromSeconds(1);
    public const int MinSamples = 5;

    readonly LinkedList<(double Seconds, long Tokens)> samples = new();

    public TimeSpan Window { get; } = window;

    public void Add(double seconds, long tokens)
    {
        if (samples.Last is { } last && (tokens < last.Value.Tokens || seconds < last.Value.Seconds)) samples.Clear();
        samples.AddLast((seconds, tokens));
        // Keep the newest sample that is at least a window old as the base, drop the ones before it.
        while (samples.Count > 2 && seconds - samples.First!.Next!.Value.Seconds >= Window.TotalSeconds) samples.RemoveFirst();
    }

    /// <summary>Tokens per second over the window; null until the samples span <see cref="MinSpan"/> or number <see cref="MinSamples"/>.</summary>
    public double? TokensPerSecond
    {
        get
        {
            if (samples.Count < 2) return null;
            var (s0, t0) = samples.First!.Value;
            var (s1, t1) = samples.Last!.Value;
            return (s1 - s0 >= MinSpan.TotalSeconds || (samples.Count >= MinSamples && s1 > s0)) && t1 > t0 ? (t1 - t0) / (s1 - s0) : null;
        }
    }

    /// <summary>The time to train <paramref name="remainingTokens"/> more at the current rate; null without a rate.</summary>
    public TimeSpan? Eta(long remainingTokens) =>
        TokensPerSecond is { } rate ? TimeSpan.FromSeconds(Math.Max(0, remainingTokens) / rate) : null;
}
