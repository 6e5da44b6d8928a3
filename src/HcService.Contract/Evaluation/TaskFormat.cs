using System.Text.Json;

namespace HcService.Contract.Evaluation;

/// <summary>The published file formats we read. Recognised from a file's content (<see cref="TaskFormats.Detect"/>),
/// never from its name, so a renamed or relocated copy still reads.</summary>
public enum TaskFormat
{
    /// <summary>HF ai2_arc rows {id, question, choices{text, label}, answerKey} (also the same-shaped
    /// tau/commonsense_qa and allenai/basic_arithmetic rows): ARC prompt.</summary>
    HfArc,
    /// <summary>HF openbookqa rows {id, question_stem, choices{text, label}, answerKey}.</summary>
    HfOpenBookQa,
    /// <summary>HF sciq rows {question, distractor1..3, correct_answer, support}.</summary>
    HfSciq,
    /// <summary>HF boolq rows {question, answer (bool), passage}.</summary>
    HfBoolQ,
    /// <summary>HF super_glue/copa rows {premise, choice1, choice2, question, idx, label}.</summary>
    HfCopa,
    /// <summary>HF winogrande rows {sentence, option1, option2, answer ("1"/"2")}.</summary>
    HfWinoGrande,
    /// <summary>HF piqa rows {goal, sol1, sol2, label}.</summary>
    HfPiqa,
    /// <summary>HF cais/mmlu rows {question, subject, choices[], answer (index)}; a folder of them reads as one task.</summary>
    HfMmlu,
    /// <summary>The original PIQA release: {goal, sol1, sol2} rows, labels in "&lt;stem&gt;-labels.lst" beside the file.</summary>
    PiqaOriginal,
    /// <summary>The original AI2 OpenBookQA jsonl: {id, question{stem, choices[{text, label}]}, answerKey}.</summary>
    OpenBookQaOriginal,
    /// <summary>llm-foundry ICL multiple choice {query, choices[], gold}.</summary>
    IclMultipleChoice,
    /// <summary>llm-foundry ICL schema {context_options[], continuation, gold}: partial scoring.</summary>
    IclSchema,
    /// <summary>HellaSwag as 6 lines per item (klosax/hellaswag_text_data, the llama.cpp format):
    /// "activity_label: ctx", the gold label 0-3, then the 4 endings.</summary>
    HellaSwagText,
}

public static class TaskFormats
{
    /// <summary>What each format looks like, for error messages.</summary>
    public const string Recognised =
        "HF ai2_arc / openbookqa / sciq / boolq / super_glue copa / winogrande / piqa / cais mmlu JSONL, " +
        "original PIQA (valid.jsonl + valid-labels.lst) or OpenBookQA JSONL, llm-foundry ICL {query, choices, gold} or " +
        "{context_options, continuation, gold}, HellaSwag 6-line text";

    /// <summary>
    /// The format of a task file (or of an MMLU folder: its first *.jsonl), from the first non-empty line: a JSON
    /// object is classified by its field names, anything else must have HellaSwag's 6-line shape. Throws
    /// <see cref="InvalidDataException"/> naming the file and the fields it found when nothing matches.
    /// </summary>
    public static TaskFormat Detect(string path)
    {
        var file = Directory.Exists(path) ? FolderFiles(path).FirstOrDefault()
            ?? throw new InvalidDataException($"{path}: a task folder must hold *.jsonl files (one per MMLU subject); it has none") : path;
        var head = File.ReadLines(file).Where(l => l.Trim().Length > 0).Take(6).ToList();
        if (head.Count == 0) throw new InvalidDataException($"{file}: empty file");
        if (!head[0].TrimStart().StartsWith('{'))
        {
            // "activity_label: ctx", a label 0-3, then endings (text, so a file of bare labels is not taken for HellaSwag)
            if (head.Count == 6 && head[0].Contains(": ", StringComparison.Ordinal) && int.TryParse(head[1].Trim(), out var label)
                && label is >= 0 and <= 3 && head.Skip(2).All(l => !int.TryParse(l.Trim(), out _)))
                return TaskFormat.HellaSwagText;
            throw new InvalidDataException($"{file}: not a recognised task format ({Recognised}); its first line is neither JSON nor a HellaSwag item");
        }
        using var doc = ParseLine(head[0], file, 1);
        var o = doc.RootElement;
        bool Has(params string[] names) => names.All(n => o.TryGetProperty(n, out _));
        var format = (TaskFormat?)(true switch
        {
            _ when Has("context_options", "continuation", "gold") => TaskFormat.IclSchema,
            _ when Has("query", "choices", "gold") => TaskFormat.IclMultipleChoice,
            _ when Has("sentence", "option1", "option2", "answer") => TaskFormat.HfWinoGrande,
            _ when Has("premise", "choice1", "choice2", "question", "label") => TaskFormat.HfCopa,
            _ when Has("goal", "sol1", "sol2", "label") => TaskFormat.HfPiqa,
            _ when Has("goal", "sol1", "sol2") => TaskFormat.PiqaOriginal,
            _ when Has("passage", "question", "answer") && o.GetProperty("answer").ValueKind is JsonValueKind.True or JsonValueKind.False => TaskFormat.HfBoolQ,
            _ when Has("support", "question", "correct_answer", "distractor1", "distractor2", "distractor3") => TaskFormat.HfSciq,
            _ when Has("question_stem", "choices", "answerKey") => TaskFormat.HfOpenBookQa,
            _ when Has("question", "answerKey") && o.GetProperty("question").ValueKind == JsonValueKind.Object => TaskFormat.OpenBookQaOriginal,
            _ when Has("question", "choices", "answerKey") && o.GetProperty("choices").ValueKind == JsonValueKind.Object => TaskFormat.HfArc,
            _ when Has("question", "subject", "choices", "answer") && o.GetProperty("choices").ValueKind == JsonValueKind.Array => TaskFormat.HfMmlu,
            _ => null,
        });
        return format ?? throw new InvalidDataException(
            $"{file}: not a recognised multiple-choice task format ({Recognised}); its rows have fields [{string.Join(", ", o.EnumerateObject().Select(p => p.Name))}]");
    }

    /// <summary>The *.jsonl files of a task folder in ordinal name order (MMLU: one file per subject).</summary>
    public static IReadOnlyList<string> FolderFiles(string folder) =>
        [.. Directory.GetFiles(folder, "*.jsonl").Order(StringComparer.Ordinal)];

    internal static JsonDocument ParseLine(string line, string file, int lineNumber)
    {
        try { return JsonDocument.Parse(line); }
        catch (JsonException e) { throw new InvalidDataException($"{file}:{lineNumber}: invalid JSON ({e.Message})", e); }
    }
}
