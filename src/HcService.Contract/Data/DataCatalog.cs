using System.Text.RegularExpressions;
using HcService.Contract.Config;

namespace HcService.Contract.Data;

/// <summary>
/// Named datasets under a data root: a name is a folder directly inside the root (letters, digits, '.', '_', '-';
/// never a path), so a spec can never reach outside it. The repository ships a small corpus in both tokenizations
/// (data/datasets): specs without `data` train on it.
/// </summary>
public sealed partial class DataCatalog(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>The shipped corpus for a model vocabulary: bytes datasets for vocab 256, GPT-2 ones otherwise.</summary>
    public static (string Train, IReadOnlyList<string> Validation) ShippedDefaults(int modelVocab)
    {
        var tok = modelVocab < 50257 ? "bytes" : "gpt2";
        return ($"corpus-{tok}", [$"valid-austen-{tok}", $"valid-wikitext-{tok}"]);
    }

    /// <summary>The folder of dataset <paramref name="name"/>, or a <see cref="ConfigException"/> for <paramref name="field"/>.</summary>
    public string Resolve(string name, string field)
    {
        if (!NameRegex().IsMatch(name))
            throw new ConfigException([new(field, name, "a dataset name (letters, digits, '.', '_', '-') under the data root")]);
        var path = Path.GetFullPath(Path.Combine(Root, name));
        if (Path.GetDirectoryName(path) != Root.TrimEnd(Path.DirectorySeparatorChar) || !Directory.Exists(path))
            throw new ConfigException([new(field, name, $"one of the datasets under the data root {Root}: {string.Join(", ", List())}")]);
        // By identity: a dataset folder that is a link to somewhere else is not under the root.
        return PathIdentity.Inside(Root, path) is { } real && real != PathIdentity.Real(Root)
            ? path
            : throw new ConfigException([new(field, name, $"a dataset folder inside the data root ('{name}' is a symbolic link out of it)")]);
    }

    /// <summary>The token datasets: folders with a manifest. Other folders (eval/, the downstream tasks) are not datasets.</summary>
    public IReadOnlyList<string> List() => Directory.Exists(Root)
        ? Directory.GetDirectories(Root).Where(d => File.Exists(Path.Combine(d, DatasetManifest.FileName)))
            .Select(Path.GetFileName).OfType<string>().Where(n => NameRegex().IsMatch(n)).Order(StringComparer.Ordinal).ToList()
        : [];

    /// <summary>Whether <paramref name="name"/> is a dataset name (never a path).</summary>
    public static bool IsName(string name) => NameRegex().IsMatch(name);

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\z")]   // \z: '$' would also match before a final newline
    private static partial Regex NameRegex();
}
