using System.Text.Json;

namespace HcService.Contract.Evaluation;

/// <summary>
/// Reads a task file (or an MMLU folder) in one of the <see cref="TaskFormat"/>s into items, lazily and in file order,
/// so a <c>limit</c> reads only the first lines. Prompts come from <see cref="Prompts"/>; this file only knows where
/// each format keeps its fields. A malformed row fails with the file, line and field.
/// </summary>
public static class TaskReader
{
    public static IEnumerable<EvalItem> Read(string path) => Read(path, TaskFormats.Detect(path));

    public static IEnumerable<EvalItem> Read(string path, TaskFormat format) => format switch
    {
        TaskFormat.HellaSwagText => ReadHellaSwag(path),
        TaskFormat.PiqaOriginal => ReadPiqaOriginal(path),
        TaskFormat.HfMmlu when Directory.Exists(path) => TaskFormats.FolderFiles(path).SelectMany(f => ReadJsonl(f, format)),
        _ => ReadJsonl(path, format),
    };

    static IEnumerable<EvalItem> ReadJsonl(string file, TaskFormat format)
    {
        var n = 0;
        foreach (var line in File.ReadLines(file))
        {
            n++;
            if (line.Trim().Length == 0) continue;
            using var doc = TaskFormats.ParseLine(line, file, n);
            var row = new Row(doc.RootElement, file, n);
            yield return format switch
            {
                TaskFormat.HfArc => Prompts.Arc(row.Str("question"), row.Strings("choices", "text"), row.Strings("choices", "label"), row.Str("answerKey")),
                TaskFormat.HfOpenBookQa => Prompts.OpenBookQa(row.Str("question_stem"), row.Strings("choices", "text"), row.Strings("choices", "label"), row.Str("answerKey")),
                TaskFormat.OpenBookQaOriginal => OpenBookQaOriginal(row),
                TaskFormat.HfSciq => Prompts.Sciq(row.Str("support"), row.Str("question"), row.Str("distractor1"), row.Str("distractor2"), row.Str("distractor3"), row.Str("correct_answer")),
                TaskFormat.HfBoolQ => Prompts.BoolQ(row.Str("passage"), row.Str("question"), row.Bool("answer")),
                TaskFormat.HfCopa => Prompts.Copa(row.Str("premise"), row.Str("question"), row.Str("choice1"), row.Str("choice2"), row.Int("label")),
                TaskFormat.HfWinoGrande => Prompts.WinoGrande(row.Str("sentence"), row.Str("option1"), row.Str("option2"), row.OneOf("answer", "1", "2")),
                TaskFormat.HfPiqa => Prompts.Piqa(row.Str("goal"), row.Str("sol1"), row.Str("sol2"), row.Int("label")),
                TaskFormat.HfMmlu => Prompts.Mmlu(row.Str("subject"), row.Str("question"), row.Strings("choices"), row.Int("answer")),
                TaskFormat.IclMultipleChoice => Prompts.IclMultipleChoice(row.Str("query"), row.Strings("choices"), row.Int("gold")),
                TaskFormat.IclSchema => Prompts.IclSchema(row.Strings("context_options"), row.Str("continuation"), row.Int("gold")),
                _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a JSONL format"),
            };
        }
    }

    static EvalItem OpenBookQaOriginal(Row row)
    {
        var q = row.Obj("question");
        var choices = q.Objects("choices");
        return Prompts.OpenBookQa(q.Str("stem"), [.. choices.Select(c => c.Str("text"))], [.. choices.Select(c => c.Str("label"))], row.Str("answerKey"));
    }

    /// <summary>The original PIQA release keeps the labels apart: line i of "&lt;stem&gt;-labels.lst" is the gold
    /// solution (0 or 1) of row i of "&lt;stem&gt;.jsonl".</summary>
    static IEnumerable<EvalItem> ReadPiqaOriginal(string file)
    {
        var labelsFile = Path.Combine(Path.GetDirectoryName(file)!, Path.GetFileNameWithoutExtension(file) + "-labels.lst");
        if (!File.Exists(labelsFile))
            throw new InvalidDataException($"{file}: original-PIQA rows carry no labels and {labelsFile} (one 0/1 per row) is missing");
        using var labels = File.ReadLines(labelsFile).GetEnumerator();
        var n = 0;
        foreach (var line in File.ReadLines(file))
        {
            n++;
            if (line.Trim().Length == 0) continue;
            if (!labels.MoveNext()) throw new InvalidDataException($"{labelsFile}: fewer labels than rows in {file} (no label for line {n})");
            if (!int.TryParse(labels.Current.Trim(), out var label) || label is not (0 or 1))
                throw new InvalidDataException($"{labelsFile}: label for line {n} = '{labels.Current}': must be 0 or 1");
            using var doc = TaskFormats.ParseLine(line, file, n);
            var row = new Row(doc.RootElement, file, n);
            yield return Prompts.Piqa(row.Str("goal"), row.Str("sol1"), row.Str("sol2"), label);
        }
    }

    static IEnumerable<EvalItem> ReadHellaSwag(string file)
    {
        var lines = new List<string>(6);
        var n = 0;
        foreach (var line in File.ReadLines(file))
        {
            n++;
            if (lines.Count == 0 && line.Length == 0) continue;   // a trailing empty line
            lines.Add(line);
            if (lines.Count < 6) continue;
            if (!int.TryParse(lines[1].Trim(), out var label) || label is < 0 or > 3)
                throw new InvalidDataException($"{file}:{n - 4}: HellaSwag gold label = '{lines[1]}': must be 0, 1, 2 or 3");
            yield return Prompts.HellaSwag(lines[0], lines[2..6], label);
            lines.Clear();
        }
        if (lines.Count > 0) throw new InvalidDataException($"{file}: {lines.Count} trailing lines: HellaSwag items are 6 lines each");
    }

    /// <summary>One JSON object with errors that name the file, line and field.</summary>
    sealed record Row(JsonElement O, string File, int Line)
    {
        JsonElement Get(string field) => O.ValueKind == JsonValueKind.Object && O.TryGetProperty(field, out var v)
            ? v : throw Error(field, "missing", "present");

        InvalidDataException Error(string field, object value, string allowed) =>
            new($"{File}:{Line}: {field} = {value}: must be {allowed}");

        public string Str(string field) => Get(field) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : throw Error(field, Get(field).ToString(), "a string");

        public bool Bool(string field) => Get(field) is { ValueKind: JsonValueKind.True or JsonValueKind.False } v ? v.GetBoolean() : throw Error(field, Get(field).ToString(), "true or false");

        /// <summary>An integer, or a string holding one (HF social/label columns are sometimes strings).</summary>
        public int Int(string field) => Get(field) switch
        {
            { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out var i) => i,
            { ValueKind: JsonValueKind.String } v when int.TryParse(v.GetString(), out var i) => i,
            var v => throw Error(field, v.ToString(), "an integer"),
        };

        /// <summary>The index of the value among <paramref name="allowed"/> (WinoGrande's answer "1"/"2" -> 0/1).</summary>
        public int OneOf(string field, params string[] allowed)
        {
            var s = Get(field).ToString();
            var i = Array.IndexOf(allowed, s);
            return i >= 0 ? i : throw Error(field, $"'{s}'", $"one of {string.Join(", ", allowed.Select(a => $"'{a}'"))}");
        }

        public Row Obj(string field) => Get(field) is { ValueKind: JsonValueKind.Object } v ? this with { O = v } : throw Error(field, Get(field).ToString(), "an object");

        public IReadOnlyList<Row> Objects(string field) => Get(field) is { ValueKind: JsonValueKind.Array } v
            ? [.. v.EnumerateArray().Select(e => this with { O = e })] : throw Error(field, Get(field).ToString(), "an array");

        public IReadOnlyList<string> Strings(string field) => Objects(field).Select((r, i) => r.O.ValueKind == JsonValueKind.String
            ? r.O.GetString()! : throw Error($"{field}[{i}]", r.O.ToString(), "a string")).ToList();

        public IReadOnlyList<string> Strings(string field, string inner) => Obj(field).Strings(inner);
    }
}
