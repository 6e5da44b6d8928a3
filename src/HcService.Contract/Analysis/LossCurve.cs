namespace HcService.Contract.Analysis;

/// <summary>One point of a loss curve: the loss measured after <paramref name="Tokens"/> training tokens.</summary>
public sealed record LossPoint(double Tokens, double Loss);

/// <summary>
/// A named loss curve (training or validation loss against tokens seen), checked once on construction so every
/// analysis can rely on it: at least one point, finite values, tokens >= 0 and strictly increasing. Unsorted or
/// duplicated token counts are rejected rather than sorted silently: they usually mean two runs were mixed up.
/// </summary>
public sealed class LossCurve
{
    public LossCurve(string name, IEnumerable<LossPoint> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        Name = string.IsNullOrWhiteSpace(name) ? throw new ArgumentException("a loss curve needs a name (used in summaries and legends)", nameof(name)) : name;
        var list = points.ToArray();
        if (list.Length == 0) throw new ArgumentException($"loss curve '{name}' has no points", nameof(points));
        for (var i = 0; i < list.Length; i++)
        {
            var p = list[i] ?? throw new ArgumentException($"loss curve '{name}': point {i} is null", nameof(points));
            if (!double.IsFinite(p.Tokens) || p.Tokens < 0 || !double.IsFinite(p.Loss))
                throw new ArgumentException($"loss curve '{name}': point {i} is (tokens {p.Tokens}, loss {p.Loss}); tokens must be finite and >= 0, loss finite", nameof(points));
            if (i > 0 && p.Tokens <= list[i - 1].Tokens)
                throw new ArgumentException($"loss curve '{name}': tokens must be strictly increasing, but point {i} has {p.Tokens} after point {i - 1} with {list[i - 1].Tokens}", nameof(points));
        }
        Points = list;
    }

    /// <summary>Builds a curve from (tokens, loss) pairs.</summary>
    public static LossCurve From(string name, IEnumerable<(double Tokens, double Loss)> points) =>
        new(name, points.Select(p => new LossPoint(p.Tokens, p.Loss)));

    /// <summary>The label used in summaries and chart legends, e.g. "DHC x4".</summary>
    public string Name { get; }

    /// <summary>The points, sorted by strictly increasing tokens.</summary>
    public IReadOnlyList<LossPoint> Points { get; }

    public LossPoint First => Points[0];
    public LossPoint Last => Points[^1];

    /// <summary>The point with the lowest loss (the first one on ties).</summary>
    public LossPoint Best => Points.Aggregate((best, p) => p.Loss < best.Loss ? p : best);

    public override string ToString() => $"{Name} ({Points.Count} points, {First.Tokens}..{Last.Tokens} tokens)";
}
