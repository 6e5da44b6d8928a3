using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using HcService.Contract.Config;

namespace HcService.Contract.Evaluation;

/// <summary>
/// What to evaluate: a known task name (EvalTasks.Known), or any name with a file relative to the data root (a file, or
/// a folder of MMLU subject files). A limit keeps the first N items in file order (deterministic; for quick
/// evaluations).
/// </summary>
/// <param name="Name">The task's name in results ("arc_easy", or a label of your own when <paramref name="File"/> is given).</param>
/// <param name="File">Relative to the data root, e.g. "eval/llm-foundry-icl/world_knowledge/arc_easy.jsonl". Null: the known task's file.</param>
/// <param name="Limit">At most this many items (>= 1); null for all.</param>
[System.Text.Json.Serialization.JsonConverter(typeof(EvalTaskSpecJson))]
public sealed record EvalTaskSpec(string Name, string? File = null, int? Limit = null);

/// <summary>A loaded task: its items in file order, and where and in which format they were read.</summary>
public sealed record EvalTask(string Name, string File, TaskFormat Format, IReadOnlyList<EvalItem> Items);

/// <summary>
/// Resolves task specs against the evaluation sets at &lt;dataRoot&gt;/eval (docs/design.md section 6 lists them; the
/// repository ships truncated copies under data/datasets/eval). Files must resolve inside the data root.
/// </summary>
public sealed partial class EvalTasks(string dataRoot)
{
    /// <summary>
    /// The known tasks and their files. Validation splits throughout, as OLMo's in-loop downstream evaluation uses:
    /// cheap enough to run at every checkpoint and never the test sets. lm-eval's published tables use the test split
    /// where one exists (ARC, SciQ, OpenBookQA, MMLU), so absolute numbers are not interchangeable with those.
    /// mmlu is the folder of the 57 validation subject files (1531 items, scored as one task: micro-average over items).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> Known = new SortedDictionary<string, string>(StringComparer.Ordinal)
    {
        ["arc_easy"] = "eval/olmo-hf-validation/ai2_arc__ARC-Easy.validation.jsonl",
        ["arc_challenge"] = "eval/olmo-hf-validation/ai2_arc__ARC-Challenge.validation.jsonl",
        ["hellaswag"] = "eval/hellaswag/hellaswag_val_full.txt",
        ["piqa"] = "eval/olmo-hf-validation/piqa__plain_text.validation.jsonl",
        ["sciq"] = "eval/olmo-hf-validation/sciq.validation.jsonl",
        ["openbookqa"] = "eval/olmo-hf-validation/openbookqa__main.validation.jsonl",
        ["copa"] = "eval/olmo-hf-validation/super_glue__copa.validation.jsonl",
        ["winogrande"] = "eval/olmo-hf-validation/winogrande__winogrande_xl.validation.jsonl",
        ["boolq"] = "eval/olmo-hf-validation/boolq.validation.jsonl",
        ["mmlu"] = "eval/mmlu-hf-final/validation",
    };

    public string Root { get; } = Path.GetFullPath(dataRoot);

    /// <summary>Reads the task <paramref name="spec"/> names. Spec errors are <see cref="ConfigException"/>s for
    /// <paramref name="field"/> (e.g. "tasks[2]") and its sub-fields name, file and limit.</summary>
    public EvalTask Load(EvalTaskSpec spec, string field = "task")
    {
        var (path, relative) = Resolve(spec, field);
        var format = TaskFormats.Detect(path);
        var items = TaskReader.Read(path, format);
        return new(spec.Name, relative, format, [.. spec.Limit is { } n ? items.Take(n) : items]);
    }

    /// <summary>The full path of the spec's file or folder, and the path relative to the data root as given.</summary>
    public (string FullPath, string Relative) Resolve(EvalTaskSpec spec, string field = "task")
    {
        var errors = new List<ConfigError>();
        if (!NameRegex().IsMatch(spec.Name ?? ""))
            errors.Add(new($"{field}.name", spec.Name, "a task name (letters, digits, '.', '_', '-')"));
        else if (spec.File is null && !Known.ContainsKey(spec.Name!))
            errors.Add(new($"{field}.name", spec.Name, $"one of the known tasks ({string.Join(", ", Known.Keys)}), or any name with a file"));
        if (spec.Limit is < 1)
            errors.Add(new($"{field}.limit", spec.Limit, "an integer >= 1, or absent for every item"));
        if (errors.Count > 0) throw new ConfigException(errors);

        var (relative, fileField) = spec.File is null ? (Known[spec.Name!], $"{field}.name") : (spec.File, $"{field}.file");
        var path = InsideRoot(relative, fileField);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new ConfigException([new(fileField, spec.File ?? spec.Name, $"a task file or folder that exists under the data root {Root} (missing: {path})")]);
        return (path, relative);
    }

    /// <summary>The real path of <paramref name="relative"/> under the data root. Rejects rooted paths, control
    /// characters and anything whose real path (symbolic links, "..", "eval/../../x" resolved) is outside the root.</summary>
    string InsideRoot(string relative, string field)
    {
        if (string.IsNullOrWhiteSpace(relative) || Path.IsPathRooted(relative) || relative.Any(char.IsControl))
            throw new ConfigException([new(field, relative, "a path relative to the data root, without control characters")]);
        var full = Path.GetFullPath(Path.Combine(Root, relative));
        var root = Path.EndsInDirectorySeparator(Root) ? Root : Root + Path.DirectorySeparatorChar;
        if (!full.StartsWith(root, StringComparison.Ordinal))
            throw new ConfigException([new(field, relative, $"a path inside the data root {Root} (it resolves to {full})")]);
        if (!File.Exists(full)) return full;   // reported as missing by the caller
        return HcService.Contract.Data.PathIdentity.Inside(Root, full)
            ?? throw new ConfigException([new(field, relative, "a file inside the data root (this one is a symbolic link out of it)")]);
    }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex NameRegex();
}

/// <summary>A task in a spec: a known name ("arc_easy") or an object {"name", "file", "limit"}.</summary>
public sealed class EvalTaskSpecJson : JsonConverter<EvalTaskSpec>
{
    public override EvalTaskSpec Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new EvalTaskSpec(reader.GetString()!);
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("a task is a name or an object {\"name\", \"file\", \"limit\"}");
        string? name = null, file = null;
        int? limit = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var property = reader.GetString();
            reader.Read();
            switch (property?.ToLowerInvariant())
            {
                case "name": name = reader.GetString(); break;
                case "file": file = reader.GetString(); break;
                case "limit": limit = reader.TokenType == JsonTokenType.Null ? null : reader.GetInt32(); break;
                default: throw new JsonException($"unknown task field '{property}' (allowed: name, file, limit)");
            }
        }
        return new EvalTaskSpec(name!, file, limit);
    }

    public override void Write(Utf8JsonWriter writer, EvalTaskSpec value, JsonSerializerOptions options)
    {
        if (value.File is null && value.Limit is null) { writer.WriteStringValue(value.Name); return; }
        writer.WriteStartObject();
        writer.WriteString("name", value.Name);
        if (value.File is not null) writer.WriteString("file", value.File);
        if (value.Limit is { } l) writer.WriteNumber("limit", l);
        writer.WriteEndObject();
    }
}
