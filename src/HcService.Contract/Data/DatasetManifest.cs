using System.Text.Json;

namespace HcService.Contract.Data;

/// <summary>One dataset folder's manifest.json: which tokenizer made it, the token files, and the sources.</summary>
public sealed record DatasetManifest
{
    public const string FileName = "manifest.json";
    public string Format { get; init; } = "hc-tokens/1";
    /// <summary>"gpt2", "bytes", or "unknown" (a folder of OLMo .npy shards without a manifest).</summary>
    public required string Tokenizer { get; init; }
    public required int VocabSize { get; init; }
    public int? EndOfText { get; init; }
    /// <summary>"uint16" or "uint32".</summary>
    public required string DType { get; init; }
    public required long TokenCount { get; init; }
    /// <summary>Token files relative to the folder, in stream order (.npy, or raw little-endian arrays).</summary>
    public required List<TokenFileEntry> Files { get; init; }
    public List<SourceEntry> Sources { get; init; } = [];
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>The manifest of a dataset of one token file, tokens.npy, made by <paramref name="tokenizer"/>.</summary>
    public static DatasetManifest OneFile(ITextTokenizer tokenizer, TokenDType dtype, long tokens, List<SourceEntry> sources) => new()
    {
        Tokenizer = tokenizer.Name,
        VocabSize = tokenizer.VocabSize,
        EndOfText = tokenizer.EndOfText,
        DType = dtype == TokenDType.UInt16 ? "uint16" : "uint32",
        TokenCount = tokens,
        Files = [new TokenFileEntry(TokenFile, tokens)],
        Sources = sources,
        CreatedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>The token file of a one-file dataset (<see cref="OneFile"/>).</summary>
    public const string TokenFile = "tokens.npy";

    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };
    public string ToJson() => JsonSerializer.Serialize(this, Json);
    /// <summary>Reads a manifest; anything that is not one is an <see cref="InvalidDataException"/> naming the file.</summary>
    public static DatasetManifest Parse(string json, string path)
    {
        if (ImageManifest.IsImageManifest(json))
            throw new InvalidDataException($"{path}: an image dataset (for \"task\": \"image-classification\"), not a token dataset");
        DatasetManifest? m;
        try { m = JsonSerializer.Deserialize<DatasetManifest>(json, Json); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a dataset manifest ({e.Message})"); }
        if (m is null) throw new InvalidDataException($"{path}: empty manifest");
        if (m.Files is null || m.Files.Any(f => f is null || string.IsNullOrEmpty(f.Name)))
            throw new InvalidDataException($"{path}: files must be a list of {{\"name\", \"tokens\"}}");
        if (m.VocabSize < 0 || m.DType is not ("uint16" or "uint32" or "npy"))
            throw new InvalidDataException($"{path}: vocabSize must be >= 0 and dType uint16 or uint32 (it says {m.VocabSize}, {m.DType})");
        return m;
    }
}

public sealed record TokenFileEntry(string Name, long Tokens);
public sealed record SourceEntry(string Path, long Bytes, string Sha256, long Tokens);
