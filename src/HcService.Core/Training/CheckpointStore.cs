using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using HcService.Core.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Training;

/// <summary>The run state a checkpoint restores besides the tensors.</summary>
public sealed record CheckpointState
{
    public required long Step { get; init; }
    public required long Tokens { get; init; }
    public required long SamplerEpoch { get; init; }
    public required long SamplerIndex { get; init; }
    /// <summary>torch's CPU generator state (dropout), base64.</summary>
    public required string RngState { get; init; }
    public required int ConsecutiveNonFinite { get; init; }
    /// <summary>The job spec the run was started with (JSON).</summary>
    public required string Spec { get; init; }
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>
/// Checkpoint files in one folder: ckpt-{step:D9}.hcckpt with a sha256sum-style ckpt-....hcckpt.sha256 beside it.
/// A file holds: magic, the JSON <see cref="CheckpointState"/>, the model's state dict, the optimizer's state.
/// Writing is atomic: a temporary file, flushed to disk, hashed while written, renamed, then its .sha256 written the
/// same way. A checkpoint without a matching .sha256 is never loaded; retention keeps the newest K.
/// </summary>
public sealed class CheckpointStore(string folder)
{
    static readonly byte[] Magic = "HCCKPT\u0001\n"u8.ToArray();
    public string Folder { get; } = folder;

    public static string FileName(long step) => $"ckpt-{step.ToString("D9", CultureInfo.InvariantCulture)}.hcckpt";

    public CheckpointRecord Save(CheckpointState state, nn.Module model, OptimizerHelper optimizer, int keep)
    {
        Directory.CreateDirectory(Folder);
        var path = Path.Combine(Folder, FileName(state.Step));
        var tmp = path + ".tmp";
        string sha;
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            using var hashing = new HashingStream(file);
            using (var w = new BinaryWriter(hashing, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(Magic);
                var json = JsonSerializer.SerializeToUtf8Bytes(state);
                w.Write(json.Length);
                w.Write(json);
                model.save(w);
                optimizer.save_state_dict(w);
            }
            hashing.Flush();
            file.Flush(flushToDisk: true);
            sha = hashing.HexDigest();
        }
        File.Move(tmp, path, overwrite: true);
        WriteAtomically(path + ".sha256", $"{sha}  {Path.GetFileName(path)}\n");
        Prune(keep);
        return new CheckpointRecord(state.Step, state.Tokens, path, new FileInfo(path).Length, sha);
    }

    /// <summary>Checkpoints on disk with a .sha256 beside them, newest first (not yet verified: see <see cref="Verify"/>).</summary>
    public IReadOnlyList<(long Step, string Path)> List() => Directory.Exists(Folder)
        ? Directory.GetFiles(Folder, "ckpt-*.hcckpt")
            .Select(p => (Step: long.TryParse(Path.GetFileNameWithoutExtension(p)[5..], NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : -1, Path: p))
            .Where(c => c.Step >= 0 && File.Exists(c.Path + ".sha256"))
            .OrderByDescending(c => c.Step).ToList()
        : [];

    /// <summary>The record of a checkpoint on disk (its step and tokens read from its header, its hash from the .sha256
    /// beside it): how a checkpoint written while the database was away is recorded later.</summary>
    public static CheckpointRecord ReadRecord(string path)
    {
        using var fs = File.OpenRead(path);
        using var r = new BinaryReader(fs, Encoding.UTF8);
        if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) throw new InvalidDataException($"{path}: not an HcService checkpoint");
        var length = r.ReadInt32();
        if (length is <= 0 or > 1 << 20 || length > fs.Length - fs.Position) throw new InvalidDataException($"{path}: a checkpoint header of {length} bytes is not plausible");
        var state = JsonSerializer.Deserialize<CheckpointState>(r.ReadBytes(length))
            ?? throw new InvalidDataException($"{path}: empty checkpoint state");
        var sha = File.ReadAllText(path + ".sha256").Split(' ', 2)[0].Trim();
        if (sha.Length != 64) throw new InvalidDataException($"{path}.sha256 holds no sha256");
        return new CheckpointRecord(state.Step, state.Tokens, path, fs.Length, sha);
    }

    /// <summary>True when the file's sha256 equals the one recorded beside it.</summary>
    public static bool Verify(string path)
    {
        var shaFile = path + ".sha256";
        if (!File.Exists(path) || !File.Exists(shaFile)) return false;
        var expected = File.ReadAllText(shaFile).Split(' ', 2)[0].Trim();
        using var fs = File.OpenRead(path);
        return string.Equals(Convert.ToHexStringLower(SHA256.HashData(fs)), expected, StringComparison.Ordinal);
    }

    /// <summary>The newest checkpoint whose hash verifies; corrupt ones are reported through <paramref name="skipped"/> and passed over.</summary>
    public (long Step, string Path)? LatestVerified(Action<string>? skipped = null)
    {
        foreach (var c in List())
        {
            if (Verify(c.Path)) return c;
            skipped?.Invoke($"checkpoint {Path.GetFileName(c.Path)} does not match its sha256; skipped");
        }
        return null;
    }

    /// <summary>Loads a verified checkpoint into <paramref name="model"/> and <paramref name="optimizer"/> (built with the
    /// same config, on the same device) and returns its state.</summary>
    public static CheckpointState Load(string path, nn.Module model, OptimizerHelper? optimizer)
    {
        using var fs = File.OpenRead(path);
        using var r = new BinaryReader(fs, Encoding.UTF8);
        if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) throw new InvalidDataException($"{path}: not an HcService checkpoint");
        var state = JsonSerializer.Deserialize<CheckpointState>(r.ReadBytes(r.ReadInt32()))
            ?? throw new InvalidDataException($"{path}: empty checkpoint state");
        model.load(r, strict: true);
        optimizer?.load_state_dict(r);
        return state;
    }

    void Prune(int keep)
    {
        foreach (var (_, path) in List().Skip(keep))
        {
            File.Delete(path + ".sha256");
            File.Delete(path);
        }
    }

    static void WriteAtomically(string path, string text)
    {
        var tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            fs.Write(Encoding.ASCII.GetBytes(text));
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>A write-only stream that hashes what passes through it.</summary>
    sealed class HashingStream(Stream inner) : Stream
    {
        readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public string HexDigest() => Convert.ToHexStringLower(hash.GetHashAndReset());
        public override void Write(byte[] buffer, int offset, int count) { hash.AppendData(buffer, offset, count); inner.Write(buffer, offset, count); }
        public override void Write(ReadOnlySpan<byte> buffer) { hash.AppendData(buffer); inner.Write(buffer); }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) hash.Dispose(); base.Dispose(disposing); }
    }
}
