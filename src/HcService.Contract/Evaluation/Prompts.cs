using System.Text.RegularExpressions;

namespace HcService.Contract.Evaluation;

/// <summary>
/// Zero-shot prompts, one function per task, following EleutherAI/lm-evaluation-harness (v0.4 task YAMLs and their
/// utils.py: arc, hellaswag, piqa, sciq, openbookqa, super_glue boolq/copa, winogrande, mmlu/default). Each returns an
/// <see cref="EvalItem"/>: the context,
/// the choices (scored as " " + choice, lm-eval's default target_delimiter) and the gold index.
/// Everything here is a pure string function, so a prompt can be checked against lm-eval by reading it.
/// </summary>
public static partial class Prompts
{
    /// <summary>ARC-Easy / ARC-Challenge (lm-eval arc_easy.yaml): "Question: {question}\nAnswer:", choices.text,
    /// gold = choices.label.index(answerKey). Labels are "A".."E" or "1".."5" depending on the item.</summary>
    public static EvalItem Arc(string question, IReadOnlyList<string> choices, IReadOnlyList<string> labels, string answerKey) =>
        EvalItem.MultipleChoice($"Question: {question}\nAnswer:", choices, IndexOfLabel(labels, answerKey.Trim()));

    /// <summary>OpenBookQA (lm-eval openbookqa.yaml): the bare question_stem, choices.text,
    /// gold = choices.label.index(answerKey.lstrip()).</summary>
    public static EvalItem OpenBookQa(string questionStem, IReadOnlyList<string> choices, IReadOnlyList<string> labels, string answerKey) =>
        EvalItem.MultipleChoice(questionStem, choices, IndexOfLabel(labels, answerKey.TrimStart()));

    /// <summary>PIQA (lm-eval piqa.yaml): "Question: {goal}\nAnswer:", choices [sol1, sol2], gold = label.</summary>
    public static EvalItem Piqa(string goal, string sol1, string sol2, int label) =>
        EvalItem.MultipleChoice($"Question: {goal}\nAnswer:", [sol1, sol2], label);

    /// <summary>SciQ (lm-eval sciq.yaml): "{support.lstrip()}\nQuestion: {question}\nAnswer:",
    /// choices [distractor1, distractor2, distractor3, correct_answer], gold = 3. An empty support leaves the
    /// leading newline, as in lm-eval.</summary>
    public static EvalItem Sciq(string support, string question, string distractor1, string distractor2, string distractor3, string correct) =>
        EvalItem.MultipleChoice($"{support.TrimStart()}\nQuestion: {question}\nAnswer:", [distractor1, distractor2, distractor3, correct], 3);

    /// <summary>BoolQ (lm-eval super_glue/boolq): "{passage}\nQuestion: {question}?\nAnswer:", choices ["no", "yes"],
    /// gold = answer (false 0, true 1). lm-eval reports acc only.</summary>
    public static EvalItem BoolQ(string passage, string question, bool answer) =>
        EvalItem.MultipleChoice($"{passage}\nQuestion: {question}?\nAnswer:", ["no", "yes"], answer ? 1 : 0);

    /// <summary>COPA (lm-eval super_glue/copa utils): the premise without its final period, then " because" (question
    /// "cause") or " therefore" ("effect"); each choice with its first letter lowercased. acc only in lm-eval.</summary>
    public static EvalItem Copa(string premise, string question, string choice1, string choice2, int label)
    {
        var connector = question switch
        {
            "cause" => "because",
            "effect" => "therefore",
            _ => throw new InvalidDataException($"COPA question = '{question}': must be 'cause' or 'effect'"),
        };
        var p = premise.Trim();
        return EvalItem.MultipleChoice($"{p[..^1]} {connector}", [LowerFirst(choice1), LowerFirst(choice2)], label);
    }

    /// <summary>WinoGrande (lm-eval preprocess_winogrande.py, partial scoring): context = sentence up to the "_" with the
    /// option substituted, continuation = the rest after the "_", stripped; gold = answer ("1" or "2") - 1.</summary>
    public static EvalItem WinoGrande(string sentence, string option1, string option2, int gold)
    {
        var blank = sentence.IndexOf('_', StringComparison.Ordinal);
        if (blank < 0) throw new InvalidDataException($"WinoGrande sentence has no '_' blank: '{sentence}'");
        var prefix = sentence[..blank];
        return EvalItem.Partial([prefix + option1, prefix + option2], sentence[(blank + 1)..].Trim(), gold);
    }

    /// <summary>HellaSwag (lm-eval hellaswag utils): query = preprocess(activity_label + ": " + ctx), choices =
    /// preprocess(ending). The 6-line text release we read (klosax/hellaswag_text_data) stores ctx = ctx_a + " " + ctx_b
    /// already partly cleaned, so lm-eval's <c>ctx_b.capitalize()</c> cannot be applied (the ctx_a / ctx_b boundary is
    /// lost): the first word of ctx_b keeps its original case. That is the one known difference from lm-eval here.</summary>
    public static EvalItem HellaSwag(string activityAndContext, IReadOnlyList<string> endings, int label) =>
        EvalItem.MultipleChoice(HellaSwagPreprocess(activityAndContext), [.. endings.Select(HellaSwagPreprocess)], label);

    /// <summary>lm-eval's hellaswag <c>preprocess</c>: strip, " [title]" to ". ", drop every "[...]" tag (WikiHow
    /// artefacts), then collapse one level of double spaces.</summary>
    public static string HellaSwagPreprocess(string text)
    {
        text = text.Trim().Replace(" [title]", ". ", StringComparison.Ordinal);
        text = BracketTag().Replace(text, "");
        return text.Replace("  ", " ", StringComparison.Ordinal);
    }

    /// <summary>
    /// MMLU, lm-eval's default (mmlu/default, zero-shot): the description "The following are multiple choice questions
    /// (with answers) about {subject with spaces}.\n\n", then "{question.strip()}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer:",
    /// scored on the letters " A" .. " D" (not the choice texts; lm-eval's mmlu default). acc only.
    /// </summary>
    public static EvalItem Mmlu(string subject, string question, IReadOnlyList<string> choices, int answer)
    {
        var letters = choices.Select((_, i) => ((char)('A' + i)).ToString()).ToArray();
        var options = string.Concat(choices.Select((c, i) => $"\n{letters[i]}. {c}"));
        var description = $"The following are multiple choice questions (with answers) about {subject.Replace('_', ' ')}.\n\n";
        return EvalItem.MultipleChoice($"{description}{question.Trim()}{options}\nAnswer:", letters, answer);
    }

    /// <summary>
    /// MosaicML llm-foundry ICL multiple choice ({query, choices, gold}): the query is already a formatted prompt.
    /// llm-foundry keeps its per-task continuation_delimiter in its YAML, not in the data, so we use lm-eval's " ";
    /// a query that already ends in whitespace gets no extra space (the scorer then moves that whitespace into the
    /// continuation, as lm-eval does).
    /// </summary>
    public static EvalItem IclMultipleChoice(string query, IReadOnlyList<string> choices, int gold) =>
        query.Length > 0 && char.IsWhiteSpace(query[^1])
            ? new([.. choices.Select(c => new EvalRequest(query, c))], CheckGold(choices.Count, gold), [.. choices.Select(EvalItem.CodePoints)])
            : EvalItem.MultipleChoice(query, choices, gold);

    /// <summary>llm-foundry ICL schema tasks ({context_options, continuation, gold}; WinoGrande, WSC): partial scoring,
    /// the same requests as <see cref="WinoGrande"/>.</summary>
    public static EvalItem IclSchema(IReadOnlyList<string> contextOptions, string continuation, int gold) =>
        EvalItem.Partial(contextOptions, continuation.Trim(), gold);

    static string LowerFirst(string s) => s.Length == 0 ? s : char.ToLowerInvariant(s[0]) + s[1..];

    static int IndexOfLabel(IReadOnlyList<string> labels, string key)
    {
        for (var i = 0; i < labels.Count; i++)
            if (labels[i] == key) return i;
        throw new InvalidDataException($"answerKey = '{key}': must be one of the choice labels [{string.Join(", ", labels)}]");
    }

    static int CheckGold(int choices, int gold) => gold >= 0 && gold < choices
        ? gold
        : throw new InvalidDataException($"gold = {gold}: must be in [0, {choices})");

    [GeneratedRegex(@"\[.*?\]")]
    private static partial Regex BracketTag();
}
