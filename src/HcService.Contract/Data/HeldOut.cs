namespace HcService.Contract.Data;

/// <summary>
/// The validation tail a training dataset holds out when a spec names `data.train` without `data.validation`: the last
/// V = w x T + 1 tokens of the stream, w whole windows of T = seqLen (plus the last window's target token), with
/// w = evalTokens / T rounded down (at least 1: exactly the windows a validation pass reads), capped so that V is at most 10% of the stream. Training samples only [0, N - V): its last
/// window reads up to token N - V - 1, so no training window ever overlaps a validation window. The split depends only on
/// N, T and evalTokens: the same for every run, every evaluation and every resume of a spec.
/// </summary>
public static class HeldOut
{
    /// <summary>A held-out tail is at most 1/MaxShare of the dataset.</summary>
    public const int MaxShare = 10;

    /// <summary>The name a held-out tail reports its metrics under: val/{name}/loss.</summary>
    public static string Name(string trainSet) => trainSet + ".heldout";

    /// <summary>The held-out split of a stream of <paramref name="length"/> tokens: the training prefix and the validation
    /// tail, in tokens; null when the stream is too short to give both at least one window (under 10 x (T + 1) tokens).</summary>
    public static (long TrainTokens, long ValidationTokens)? Split(long length, int seqLen, long evalTokens)
    {
        if (seqLen < 1 || length < 1) return null;
        var wanted = Math.Max(1, evalTokens / seqLen);
        var cap = (length / MaxShare - 1) / seqLen;
        var windows = Math.Min(wanted, cap);
        if (windows < 1) return null;
        var validation = windows * seqLen + 1;
        var train = length - validation;
        return train >= seqLen + 1 ? (train, validation) : null;
    }

    /// <summary>Fewest tokens a dataset needs to hold out a tail for sequences of <paramref name="seqLen"/>.</summary>
    public static long MinimumLength(int seqLen) => MaxShare * ((long)seqLen + 1);
}
