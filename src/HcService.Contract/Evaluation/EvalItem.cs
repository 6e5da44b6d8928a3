namespace HcService.Contract.Evaluation;

/// <summary>One log-likelihood request: the model reads <see cref="Context"/> and we sum the log-probabilities of the
/// tokens of <see cref="Continuation"/> (lm-evaluation-harness's <c>loglikelihood(context, continuation)</c>).</summary>
public sealed record EvalRequest(string Context, string Continuation);

/// <summary>
/// One multiple-choice item: one request per choice and the index of the correct one.
/// Two shapes, as in lm-evaluation-harness:
/// <list type="bullet">
/// <item>multiple choice: one context, one continuation per choice (" " + choice text);</item>
/// <item>partial scoring (WinoGrande, Trinh &amp; Le 2018): one context per choice (the sentence up to the blank with the
/// option substituted) and one shared continuation (the rest of the sentence), so every choice is scored on the same
/// tokens. Such items have no acc_norm (lm-eval reports acc only), hence <see cref="NormLengths"/> is null.</item>
/// </list>
/// </summary>
/// <param name="Requests">One per choice, in the dataset's choice order.</param>
/// <param name="Gold">Index of the correct choice in <paramref name="Requests"/>.</param>
/// <param name="NormLengths">acc_norm denominators, one per choice: the length of the choice text in Unicode code points,
/// without the leading delimiter (lm-eval: <c>len(choice)</c> on the doc_to_choice string). Null for partial scoring.</param>
public sealed record EvalItem(IReadOnlyList<EvalRequest> Requests, int Gold, IReadOnlyList<int>? NormLengths)
{
    /// <summary>lm-eval's default <c>target_delimiter</c>: the continuation is " " + choice.</summary>
    public const string Delimiter = " ";

    public bool PartialScoring => NormLengths is null;

    /// <summary>One context, one continuation per choice: <c>Delimiter + choice</c>.</summary>
    public static EvalItem MultipleChoice(string context, IReadOnlyList<string> choices, int gold)
    {
        Check(choices.Count, gold);
        return new([.. choices.Select(c => new EvalRequest(context, Delimiter + c))], gold, [.. choices.Select(CodePoints)]);
    }

    /// <summary>One context per choice, one shared continuation (<c>Delimiter + continuation</c>); acc only.</summary>
    public static EvalItem Partial(IReadOnlyList<string> contexts, string continuation, int gold)
    {
        Check(contexts.Count, gold);
        return new([.. contexts.Select(c => new EvalRequest(c, Delimiter + continuation))], gold, null);
    }

    /// <summary>Python's <c>len(str)</c>: code points, not UTF-16 units (they differ outside the BMP).</summary>
    public static int CodePoints(string s) => s.EnumerateRunes().Count();

    static void Check(int choices, int gold)
    {
        if (choices < 1) throw new ArgumentException($"an item needs at least one choice, got {choices}");
        if (gold < 0 || gold >= choices) throw new ArgumentOutOfRangeException(nameof(gold), gold, $"gold must be in [0, {choices})");
    }
}
