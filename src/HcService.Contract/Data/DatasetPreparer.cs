using System.Security.Cryptography;
using System.Text;

namespace HcService.Contract.Data;

/// <summary>
/// `hc data prepare`: tokenises plain-text files into an OLMo-compatible token file (uint16 .npy, or uint32 when the
/// vocabulary needs it) plus a manifest. Each input file is one document; an end-of-text id follows every document.
/// </summary>
public static class DatasetPreparer
{
    /// <summary>Text is tokenised in chunks of about this many characters, cut after a blank line where possible.</summary>
    const int ChunkChars = 1 << 16;

    public static DatasetManifest Prepare(IEnumerable<string> inputs, string outDir, ITextTokenizer tokenizer, IProgress<(long Done, long Total)>? progress = null)
    {
        var files = ExpandInputs(inputs);
        if (files.Count == 0) throw new HcService.Contract.Config.ConfigException([new("inputs", string.Join(" ", inputs), "text files or folders containing *.txt files")]);
        Directory.CreateDirectory(outDir);
        var dtype = tokenizer.VocabSize <= 65536 ? TokenDType.UInt16 : TokenDType.UInt32;
        var tokenPath = Path.Combine(outDir, DatasetManifest.TokenFile);
        var tmpPath = tokenPath + ".tmp";
        var totalBytes = files.Sum(f => new FileInfo(f).Length);
        long doneBytes = 0, count = 0;
        var sources = new List<SourceEntry>();
        using (var stream = new FileStream(tmpPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            NpyFile.WriteHeader(stream, dtype, 0);
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            foreach (var file in files)
            {
                var bytes = File.ReadAllBytes(file);
                var text = Encoding.UTF8.GetString(bytes);
                long fileTokens = 0;
                foreach (var chunk in Chunks(text))
                {
                    foreach (var id in tokenizer.Encode(chunk)) { Write(writer, dtype, id); fileTokens++; }
                    doneBytes += Encoding.UTF8.GetByteCount(chunk);
                    progress?.Report((doneBytes, totalBytes));
                }
                Write(writer, dtype, tokenizer.EndOfText);
                fileTokens++;
                count += fileTokens;
                sources.Add(new SourceEntry(Path.GetFileName(file), bytes.Length, Convert.ToHexStringLower(SHA256.HashData(bytes)), fileTokens));
            }
            writer.Flush();
            stream.Position = 0;
            NpyFile.WriteHeader(stream, dtype, count);
            stream.Flush(flushToDisk: true);
        }
        File.Move(tmpPath, tokenPath, overwrite: true);
        var manifest = DatasetManifest.OneFile(tokenizer, dtype, count, sources);
        File.WriteAllText(Path.Combine(outDir, DatasetManifest.FileName), manifest.ToJson());
        return manifest;
    }

    static void Write(BinaryWriter w, TokenDType dtype, int id)
    {
        if (dtype == TokenDType.UInt16) w.Write((ushort)id); else w.Write((uint)id);
    }

    static List<string> ExpandInputs(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
                files.AddRange(Directory.EnumerateFiles(input, "*.txt", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
            else if (File.Exists(input))
                files.Add(input);
            else
                throw new HcService.Contract.Config.ConfigException([new("inputs", input, "an existing text file or folder")]);
        }
        return files;
    }

    /// <summary>Pieces of about <see cref="ChunkChars"/> characters, each ending after a blank line when one is near,
    /// so that no BPE pre-token is split (GPT-2 pre-tokenisation never merges across "\n\n" + a non-space).</summary>
    static IEnumerable<string> Chunks(string text)
    {
        var start = 0;
        while (start < text.Length)
        {
            var end = Math.Min(text.Length, start + ChunkChars);
            if (end < text.Length)
            {
                var cut = text.LastIndexOf("\n\n", end, end - start, StringComparison.Ordinal);
                // Cut after the blank line and its following whitespace, so the next chunk starts at a non-space.
                if (cut > start)
                {
                    end = cut + 2;
                    while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
                }
            }
            yield return text[start..end];
            start = end;
        }
    }
}
