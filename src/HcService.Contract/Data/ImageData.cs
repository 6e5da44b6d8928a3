using System.IO.Compression;
using System.Text.Json;

namespace HcService.Contract.Data;

/// <summary>
/// An image dataset folder's manifest.json (format "hc-images/1"): the class names and, per split, its images and labels
/// as IDX files (the MNIST family's format, optionally gzipped). Written by the setup script for Fashion-MNIST.
/// </summary>
public sealed record ImageManifest
{
    public const string FormatName = "hc-images/1";
    public string Format { get; init; } = FormatName;
    /// <summary>The classes in label order (label i is Classes[i]).</summary>
    public required List<string> Classes { get; init; }
    public required ImageSplitFiles Train { get; init; }
    /// <summary>The held-out split: a vision job's default validation set.</summary>
    public required ImageSplitFiles Test { get; init; }
    public string? Source { get; init; }
    public string? License { get; init; }

    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Whether the manifest text at <paramref name="json"/> is an image dataset's.</summary>
    public static bool IsImageManifest(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("format", out var f)
                && f.ValueKind == JsonValueKind.String && f.GetString() == FormatName;
        }
        catch (JsonException) { return false; }
    }

    public static ImageManifest Parse(string json, string path)
    {
        ImageManifest? m;
        try { m = JsonSerializer.Deserialize<ImageManifest>(json, Json); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not an image dataset manifest ({e.Message})"); }
        if (m is null || m.Classes is not { Count: >= 2 } || m.Train?.Images is null || m.Train.Labels is null || m.Test?.Images is null || m.Test.Labels is null)
            throw new InvalidDataException($"{path}: an image manifest needs classes (at least 2) and train and test, each with images and labels");
        return m;
    }
}

/// <summary>One split's files, relative to the dataset folder.</summary>
public sealed record ImageSplitFiles(string Images, string Labels);

/// <summary>One split in memory: N images of Channels x Size x Size bytes (row-major) and their labels.</summary>
public sealed record ImageSplit(string Name, byte[] Pixels, int[] Labels, int Channels, int Size, int Classes)
{
    public int Count => Labels.Length;
    public int PixelsPerImage => Channels * Size * Size;

    /// <summary>Reads a split of an image dataset folder.</summary>
    public static ImageSplit Read(string folder, ImageManifest manifest, bool train, string name)
    {
        var files = train ? manifest.Train : manifest.Test;
        var (imageDims, pixels) = Idx.Read(Inside(folder, files.Images));
        var (labelDims, labelBytes) = Idx.Read(Inside(folder, files.Labels));
        var (channels, size) = Shape(files, imageDims, labelDims);
        var labels = labelBytes.Select(b => (int)b).ToArray();
        if (labels.FirstOrDefault(l => l >= manifest.Classes.Count, -1) is var bad && bad >= 0)
            throw new InvalidDataException($"{files.Labels}: label {bad} for {manifest.Classes.Count} classes");
        return new ImageSplit(name, pixels, labels, channels, size, manifest.Classes.Count);
    }

    /// <summary>A split's (channels, size, classes) from the IDX headers alone.</summary>
    public static (int Channels, int Size, int Classes) Peek(string folder, ImageManifest manifest, bool train)
    {
        var files = train ? manifest.Train : manifest.Test;
        var (channels, size) = Shape(files, Idx.Dimensions(Inside(folder, files.Images)), Idx.Dimensions(Inside(folder, files.Labels)));
        return (channels, size, manifest.Classes.Count);
    }

    static (int Channels, int Size) Shape(ImageSplitFiles files, int[] imageDims, int[] labelDims)
    {
        if (imageDims.Length is not (3 or 4) || imageDims[^2] != imageDims[^1] || (imageDims.Length == 4 && imageDims[1] > 64))
            throw new InvalidDataException($"{files.Images}: images must be N x size x size (grey) or N x channels x size x size, got {string.Join(" x ", imageDims)}");
        if (labelDims.Length != 1 || labelDims[0] != imageDims[0])
            throw new InvalidDataException($"{files.Labels}: {string.Join(" x ", labelDims)} labels for {imageDims[0]} images");
        return imageDims.Length == 3 ? (1, imageDims[1]) : (imageDims[1], imageDims[2]);
    }

    /// <summary>The image dataset <paramref name="name"/> under the catalog for a vision plan: its folder and manifest, with
    /// every split of the model's image size, channels and classes; else a <see cref="HcService.Contract.Config.ConfigException"/> on data.train.</summary>
    public static (string Folder, ImageManifest Manifest) Fit(DataCatalog catalog, string name, HcService.Contract.Config.VisionConfig v, string preset)
    {
        var folder = catalog.Resolve(name, "data.train");
        var manifestPath = Path.Combine(folder, DatasetManifest.FileName);
        var text = File.Exists(manifestPath) ? File.ReadAllText(manifestPath) : "";
        if (!ImageManifest.IsImageManifest(text))
            throw new HcService.Contract.Config.ConfigException([new("data.train", name,
                "an image dataset (a folder whose manifest.json has format \"hc-images/1\", such as fashion-mnist, which scripts/setup.sh installs) for image-classification")]);
        var manifest = ImageManifest.Parse(text, manifestPath);
        foreach (var train in new[] { true, false })
        {
            var (channels, size, classes) = Peek(folder, manifest, train);
            if (size != v.ImageSize || channels != v.Channels || classes != v.Classes)
                throw new HcService.Contract.Config.ConfigException([new("data.train", name,
                    $"images of the model's shape: {v.Channels} channel(s), {v.ImageSize} x {v.ImageSize} px, {v.Classes} classes " +
                    $"(its {(train ? "train" : "test")} split has {channels}, {size} x {size}, {classes}; model.preset {preset} fixes the model's)")]);
        }
        return (folder, manifest);
    }

    static string Inside(string folder, string relative)
    {
        var path = Path.GetFullPath(Path.Combine(folder, relative));
        if (!path.StartsWith(Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new InvalidDataException($"{relative}: a file inside the dataset folder");
        return path;
    }
}

/// <summary>IDX files (LeCun's MNIST format): a big-endian magic (0, 0, type 0x08 = unsigned byte, dimension count),
/// the dimensions as big-endian 32-bit integers, then the bytes. Gzipped when the name ends in .gz.</summary>
public static class Idx
{
    public static (int[] Dims, byte[] Data) Read(string path)
    {
        using var file = File.OpenRead(path);
        using Stream s = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        var (dims, total) = Header(s, path);
        var data = new byte[total];
        try { s.ReadExactly(data); }
        catch (EndOfStreamException) { throw new InvalidDataException($"{path}: shorter than its {string.Join(" x ", dims)} header says"); }
        return (dims, data);
    }

    /// <summary>The dimensions of an IDX file, from its header alone (a submission's check reads no pixels).</summary>
    public static int[] Dimensions(string path)
    {
        using var file = File.OpenRead(path);
        using Stream s = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        return Header(s, path).Dims;
    }

    static (int[] Dims, long Total) Header(Stream s, string path)
    {
        Span<byte> header = stackalloc byte[4];
        s.ReadExactly(header);
        if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] is < 1 or > 4)
            throw new InvalidDataException($"{path}: not an unsigned-byte IDX file (magic {Convert.ToHexString(header)}, expected 000008 and 1 to 4 dimensions)");
        var dims = new int[header[3]];
        long total = 1;
        for (var i = 0; i < dims.Length; i++)
        {
            s.ReadExactly(header);
            dims[i] = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header);
            if (dims[i] < 1) throw new InvalidDataException($"{path}: dimension {i} is {dims[i]}");
            total *= dims[i];
        }
        if (total > Array.MaxLength) throw new InvalidDataException($"{path}: {total} bytes is more than one array holds");
        return (dims, total);
    }

    /// <summary>Writes an unsigned-byte IDX file (tests make small datasets with it).</summary>
    public static void Write(string path, int[] dims, byte[] data)
    {
        using var file = File.Create(path);
        using Stream s = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionLevel.Fastest) : file;
        s.Write([0, 0, 0x08, (byte)dims.Length]);
        Span<byte> b = stackalloc byte[4];
        foreach (var d in dims) { System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(b, d); s.Write(b); }
        s.Write(data);
    }
}
