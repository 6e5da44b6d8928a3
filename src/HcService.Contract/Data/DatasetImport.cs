using System.Security.Cryptography;
using System.Text;
using HcService.Contract.Config;

namespace HcService.Contract.Data;

/// <summary>
/// A dataset received whole (POST /api/datasets, `hc data push`): UTF-8 text to tokenise, or a token file (.npy of
/// uint16 or uint32 ids) checked in full. Each is made into a folder aside (a name the catalog never lists) and renamed
/// into the data root only when complete and valid, so a run can never see half a dataset, and a dataset, once there, is
/// never replaced (a run's data must not change beneath it). Errors name the field: "name", "tokenizer" or "body".
/// </summary>
public static class DatasetImport
{
    /// <summary>Folders of imports in progress start with this: never a dataset name, so never listed or resolved.</summary>
    public const string StagingPrefix = ".upload-";

    /// <summary>The stored upload at <paramref name="bodyFile"/> (its bytes, moved into the new folder or deleted) as
    /// dataset <paramref name="name"/> under <paramref name="root"/>. <paramref name="isTokens"/>: a .npy token file
    /// whose ids must be below <paramref name="tokenizerName"/>'s vocabulary; else UTF-8 text, one document.</summary>
    /// <exception cref="ConfigException">The name, the tokenizer or the body does not fit.</exception>
    /// <exception cref="DatasetExistsException">A dataset of that name exists.</exception>
    public static DatasetManifest Import(string root, string name, string tokenizerName, bool isTokens, string bodyFile)
    {
        var catalog = new DataCatalog(root);
        try { Check(root, name, tokenizerName, isTokens); }
        catch { File.Delete(bodyFile); throw; }

        var tokenizer = TextTokenizers.Create(tokenizerName);
        var staging = Path.Combine(catalog.Root, StagingPrefix + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(staging);
            var manifest = isTokens ? FromTokens(bodyFile, staging, tokenizer) : FromText(bodyFile, staging, tokenizer);
            try { Directory.Move(staging, Path.Combine(catalog.Root, name)); }
            catch (IOException) when (Exists(catalog, name)) { throw new DatasetExistsException(name); }   // another upload won
            return manifest;
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            File.Delete(bodyFile);
        }
    }

    /// <summary>What can be checked before the body arrives: the name (a dataset name, not in use) and the tokenizer.</summary>
    /// <exception cref="ConfigException">The name or the tokenizer does not fit.</exception>
    /// <exception cref="DatasetExistsException">A dataset of that name exists.</exception>
    public static void Check(string root, string name, string tokenizerName, bool isTokens)
    {
        var errors = new List<ConfigError>();
        if (!DataCatalog.IsName(name)) errors.Add(new("name", name, "a dataset name: a letter or digit, then letters, digits, '.', '_', '-' (at most 128)"));
        if (!TextTokenizers.Names.Contains(tokenizerName)) errors.Add(new("tokenizer", tokenizerName, $"one of {string.Join(", ", TextTokenizers.Names)}: the tokenizer {(isTokens ? "that made the token ids" : "to tokenise the text with")}"));
        if (errors.Count > 0) throw new ConfigException(errors);
        if (Exists(new DataCatalog(root), name)) throw new DatasetExistsException(name);
    }

    /// <summary>Removes staging folders older than <paramref name="age"/>: uploads a crashed process left behind.</summary>
    public static void RemoveStale(string root, TimeSpan age)
    {
        if (!Directory.Exists(root)) return;
        foreach (var path in Directory.EnumerateFileSystemEntries(root, StagingPrefix + "*"))
            try
            {
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(path) <= age) continue;
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true); else File.Delete(path);
            }
            catch (IOException) { } catch (UnauthorizedAccessException) { }   // another process's, or already gone
    }

    /// <summary>Where an upload's body is stored while it arrives: inside the data root (one file system, so the import
    /// moves it instead of copying), under a name the catalog never lists.</summary>
    public static string NewBodyFile(string root)
    {
        Directory.CreateDirectory(root);
        return Path.Combine(Path.GetFullPath(root), StagingPrefix + Guid.NewGuid().ToString("N") + ".body");
    }

    static bool Exists(DataCatalog catalog, string name) =>
        Directory.Exists(Path.Combine(catalog.Root, name)) || File.Exists(Path.Combine(catalog.Root, name));

    static DatasetManifest FromText(string bodyFile, string folder, ITextTokenizer tokenizer)
    {
        // Checked as bytes (no string of the whole body here: the preparer reads the file itself).
        var bytes = File.ReadAllBytes(bodyFile);
        if (bytes.Length == 0) throw Body("text to tokenise (the body is empty)");
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            try { _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(bytes); }
            catch (DecoderFallbackException e) { throw Body($"UTF-8 text (byte {e.Index} is not UTF-8)"); }
        }
        if (tokenizer.EndOfText == 0 && bytes.AsSpan().IndexOf((byte)0) >= 0) throw Body("text without NUL characters (the bytes tokenizer ends documents with NUL)");
        bytes = null;
        var input = Path.Combine(folder, "upload.txt");
        File.Move(bodyFile, input);
        var manifest = DatasetPreparer.Prepare([input], folder, tokenizer);
        File.Delete(input);
        return manifest;
    }

    static DatasetManifest FromTokens(string bodyFile, string folder, ITextTokenizer tokenizer)
    {
        TokenDType dtype;
        long count;
        using (var stream = File.OpenRead(bodyFile))
        {
            long offset;
            try { (dtype, count, offset) = NpyFile.ReadHeader(stream, "the token file"); }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
            {
                throw Body($"a .npy file of uint16 or uint32 token ids ({(e is EndOfStreamException ? "the body ends inside the .npy header" : e.Message)})");
            }
            var width = dtype == TokenDType.UInt16 ? 2 : 4;
            if (count < 1) throw Body("a .npy file of at least one token (its shape says 0)");
            if (count > (stream.Length - offset) / width || offset + count * width != stream.Length)
                throw Body($"a .npy file whose data is its header's size: the header says {count} tokens ({count * width} bytes), the body holds {stream.Length - offset} bytes after it");
        }
        string sha;
        using (var stream = File.OpenRead(bodyFile)) sha = Convert.ToHexStringLower(SHA256.HashData(stream));
        var bytes = new FileInfo(bodyFile).Length;
        File.Move(bodyFile, Path.Combine(folder, DatasetManifest.TokenFile));
        var manifest = DatasetManifest.OneFile(tokenizer, dtype, count, [new SourceEntry("upload.npy", bytes, sha, count)]);
        File.WriteAllText(Path.Combine(folder, DatasetManifest.FileName), manifest.ToJson());
        using var data = new TokenDataset(folder);
        if (FirstOutside(data, tokenizer.VocabSize) is { } bad)
            throw Body($"token ids below the {tokenizer.Name} vocabulary {tokenizer.VocabSize}: token {bad.Position} is {bad.Id}");
        return manifest;
    }

    /// <summary>The first token at or above <paramref name="vocab"/>, reading every token.</summary>
    static (long Position, long Id)? FirstOutside(TokenDataset data, int vocab)
    {
        var buffer = new long[1 << 16];
        for (long start = 0; start < data.Length; start += buffer.Length)
        {
            var span = buffer.AsSpan(0, (int)Math.Min(buffer.Length, data.Length - start));
            data.Read(start, span);
            for (var i = 0; i < span.Length; i++) if (span[i] >= vocab) return (start + i, span[i]);
        }
        return null;
    }

    static ConfigException Body(string allowed) => new([new("body", "(the uploaded file)", allowed)]);
}

/// <summary>A dataset of that name is already under the data root: datasets are never replaced.</summary>
public sealed class DatasetExistsException(string name) : Exception($"a dataset named '{name}' already exists; datasets are never replaced (runs may be reading it): pick another name")
{
    public string Name { get; } = name;
}
