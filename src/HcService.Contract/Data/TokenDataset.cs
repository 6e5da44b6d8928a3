using System.IO.MemoryMappedFiles;

namespace HcService.Contract.Data;

/// <summary>
/// A token stream read through memory maps: the dataset's token files (.npy, or raw uint16/uint32 arrays) concatenated
/// in manifest order. A folder without manifest.json is read as OLMo-style shards: its *.npy files in name order.
/// </summary>
public sealed class TokenDataset : IDisposable
{
    sealed record Segment(long Start, long Count, TokenDType DType, MemoryMappedFile File, MemoryMappedViewAccessor View, long Offset);

    readonly List<Segment> segments = [];
    /// <summary>Where a slice starts in its parent's stream (0 for a whole dataset).</summary>
    readonly long origin;
    /// <summary>False for a slice: its parent's memory maps are the parent's to close.</summary>
    readonly bool ownsFiles = true;
    public string Path { get; }
    /// <summary>The name its metrics are reported under: the folder's name, or a slice's own name.</summary>
    public string Name { get; }
    public DatasetManifest Manifest { get; }
    public long Length { get; }

    /// <summary>Tokens [start, start + length) of <paramref name="parent"/>, read through the parent's maps.</summary>
    TokenDataset(TokenDataset parent, long start, long length, string name)
    {
        if (start < 0 || length < 0 || start + length > parent.Length)
            throw new ArgumentOutOfRangeException(nameof(start), $"slice [{start}, {start + length}) outside [0, {parent.Length})");
        (segments, origin, ownsFiles) = (parent.segments, parent.origin + start, false);
        (Path, Name, Manifest, Length) = (parent.Path, name, parent.Manifest, length);
    }

    /// <summary>A view of tokens [start, start + length) named <paramref name="name"/>; valid while this dataset is open.</summary>
    public TokenDataset Slice(long start, long length, string name) => new(this, start, length, name);

    public TokenDataset(string folder)
    {
        Path = folder;
        Name = System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(folder));
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
            if (entry.Name.Any(char.IsControl) || System.IO.Path.IsPathRooted(entry.Name))
                throw new InvalidDataException($"{manifestPath}: token file name {entry.Name} is not a plain relative name");
            var file = System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, entry.Name));
            if (!File.Exists(file)) throw new FileNotFoundException($"{manifestPath}: token file {entry.Name} does not exist", file);
            // By identity (symbolic links and ".." resolved), never by the text of the name.
            file = PathIdentity.Inside(folder, file) is { } real && real != PathIdentity.Real(folder) ? real
                : throw new InvalidDataException($"{manifestPath}: token file {entry.Name} is outside the dataset folder (a symbolic link or '..' out of it)");
            TokenDType dtype;
            long count, offset;
            if (file.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
            {
                using var fs = File.OpenRead(file);
                (dtype, count, offset) = NpyFile.ReadHeader(fs, file);
                var needed = count > (long.MaxValue - offset) / 4 ? long.MaxValue : offset + count * (dtype == TokenDType.UInt16 ? 2 : 4);
                if (needed > fs.Length)
                    throw new InvalidDataException($"{file}: its header says {count} tokens, which need {needed} bytes; the file has {fs.Length}");
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
        start += origin;
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

    /// <summary>The largest token id in a sample: every token of a dataset up to 1M tokens, else 256 evenly spaced
    /// windows of 4096. How a dataset whose tokens do not fit a model's vocabulary is found before a run starts.</summary>
    public long SampleMax()
    {
        const int Window = 4096, Windows = 256;
        long max = 0;
        var buf = new long[Window];
        void Scan(long start, int n)
        {
            var span = buf.AsSpan(0, n);
            Read(start, span);
            foreach (var t in span) if (t > max) max = t;
        }
        if (Length <= (long)Window * Windows)
            for (long s = 0; s < Length; s += Window) Scan(s, (int)Math.Min(Window, Length - s));
        else
            for (var w = 0; w < Windows; w++) Scan((Length - Window) * w / (Windows - 1), Window);
        return max;
    }

    public void Dispose()
    {
        if (!ownsFiles) return;
        foreach (var s in segments) { s.View.Dispose(); s.File.Dispose(); }
        segments.Clear();
    }
}
