using System.IO.MemoryMappedFiles;

namespace HcService.Core.Data;

/// <summary>
/// A token stream read through memory maps: the dataset's token files (.npy, or raw uint16/uint32 arrays) concatenated
/// in manifest order. A folder without manifest.json is read as OLMo-style shards: its *.npy files in name order.
/// </summary>
public sealed class TokenDataset : IDisposable
{
    sealed record Segment(long Start, long Count, TokenDType DType, MemoryMappedFile File, MemoryMappedViewAccessor View, long Offset);

    readonly List<Segment> segments = [];
    public string Path { get; }
    public DatasetManifest Manifest { get; }
    public long Length { get; }

    public TokenDataset(string folder)
    {
        Path = folder;
        var manifestPath = System.IO.Path.Combine(folder, DatasetManifest.FileName);
        if (File.Exists(manifestPath)) Manifest = DatasetManifest.Parse(File.ReadAllText(manifestPath), manifestPath);
        else
        {
            var shards = Directory.Exists(folder) ? Directory.GetFiles(folder, "*.npy").Order(StringComparer.Ordinal).ToList() : [];
            if (shards.Count == 0) throw new FileNotFoundException($"{folder}: no {DatasetManifest.FileName} and no *.npy token files");
            Manifest = new DatasetManifest
            {
                Tokenizer = "unknown", VocabSize = 0, DType = "npy", TokenCount = -1,
                Files = shards.Select(s => new TokenFileEntry(System.IO.Path.GetFileName(s), -1)).ToList(),
            };
        }
        long start = 0;
        foreach (var entry in Manifest.Files)
        {
            var file = System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, entry.Name));
            if (!file.StartsWith(System.IO.Path.GetFullPath(folder), StringComparison.Ordinal))
                throw new InvalidDataException($"{manifestPath}: token file {entry.Name} is outside the dataset folder");
            TokenDType dtype;
            long count, offset;
            if (file.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
            {
                using var fs = File.OpenRead(file);
                (dtype, count, offset) = NpyFile.ReadHeader(fs, file);
            }
            else
            {
                dtype = Manifest.DType == "uint32" ? TokenDType.UInt32 : TokenDType.UInt16;
                offset = 0;
                count = new FileInfo(file).Length / (dtype == TokenDType.UInt16 ? 2 : 4);
            }
            if (count == 0) continue;
            var mmf = MemoryMappedFile.CreateFromFile(file, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            var view = mmf.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            segments.Add(new Segment(start, count, dtype, mmf, view, offset));
            start += count;
        }
        Length = start;
        if (Manifest.TokenCount >= 0 && Manifest.TokenCount != Length)
            throw new InvalidDataException($"{folder}: manifest says {Manifest.TokenCount} tokens, files hold {Length}");
    }

    /// <summary>Copies tokens [start, start + dest.Length) into <paramref name="dest"/>.</summary>
    public void Read(long start, Span<long> dest)
    {
        if (start < 0 || start + dest.Length > Length)
            throw new ArgumentOutOfRangeException(nameof(start), $"tokens [{start}, {start + dest.Length}) outside [0, {Length})");
        var written = 0;
        foreach (var seg in segments)
        {
            if (written == dest.Length) break;
            var pos = start + written;
            if (pos >= seg.Start + seg.Count || pos < seg.Start) continue;
            var n = (int)Math.Min(dest.Length - written, seg.Start + seg.Count - pos);
            var byteOffset = seg.Offset + (pos - seg.Start) * (seg.DType == TokenDType.UInt16 ? 2 : 4);
            if (seg.DType == TokenDType.UInt16)
            {
                var buf = new ushort[n];
                seg.View.ReadArray(byteOffset, buf, 0, n);
                for (var i = 0; i < n; i++) dest[written + i] = buf[i];
            }
            else
            {
                var buf = new uint[n];
                seg.View.ReadArray(byteOffset, buf, 0, n);
                for (var i = 0; i < n; i++) dest[written + i] = buf[i];
            }
            written += n;
        }
    }

    public void Dispose()
    {
        foreach (var s in segments) { s.View.Dispose(); s.File.Dispose(); }
        segments.Clear();
    }
}
