using System.Buffers;
using System.Text;
using System.Text.Json;
using HcService.Contract.Evaluation;
using HcService.Core.Evaluation;
using HcService.Store.Runs;

namespace HcService.Cli.Children;

/// <summary>
/// What a run attempt has measured and PostgreSQL does not have yet, on disk in the run folder (the write-ahead log of
/// <see cref="PostgresRunSink"/>): one JSON object per line, a metric point {"n","s","t","v"} or an in-loop evaluation
/// {"e": ...}. Every line is handed to the operating system when its step is reported (a killed process loses none)
/// and the file is flushed to the disk before a checkpoint is written (a machine that dies loses none a checkpoint
/// covers). It is emptied each time its content has been committed to PostgreSQL, so it holds at most the points of one
/// database outage; the next attempt reads what an attempt left (<see cref="PostgresRunSink.Recover"/>).
/// </summary>
public sealed class PointJournal : IDisposable
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
    static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true };
    readonly FileStream file;
    /// <summary>A read-only handle held for the writer's lifetime: .NET takes a shared flock for it on every file system
    /// (for a handle with write access it skips the lock on NFS and CIFS), so an exclusive open elsewhere fails while this
    /// attempt lives. (DOTNET_SYSTEM_IO_DISABLEFILELOCKING turns all of this off.)</summary>
    readonly FileStream alive;
    readonly ArrayBufferWriter<byte> line = new(256);
    bool disposed;

    /// <summary>A new journal for <paramref name="attempt"/> in <paramref name="folder"/> (a unique file: two writers of
    /// one attempt never share one).</summary>
    public PointJournal(string folder, int attempt)
    {
        Directory.CreateDirectory(folder);
        Path = System.IO.Path.Combine(folder, $"attempt-{attempt}-{Guid.NewGuid():N}.jsonl");
        // Shared lock (flock) while this process writes: a reader can copy the journal, but only an exclusive open, which
        // fails while the writer lives, lets it delete the file (see Release).
        file = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, 1 << 16);
        alive = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
    }

    public string Path { get; }

    /// <summary>Bytes written since the journal was last emptied.</summary>
    public long Length => file.Length;

    public void Append(in PointValue p)
    {
        line.ResetWrittenCount();
        using (var w = new Utf8JsonWriter(line, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("n", p.Name);
            w.WriteNumber("s", p.Step);
            w.WriteNumber("t", p.Tokens);
            if (double.IsFinite(p.Value)) w.WriteNumber("v", p.Value);
            else w.WriteString("v", double.IsNaN(p.Value) ? "NaN" : p.Value > 0 ? "Infinity" : "-Infinity");
            w.WriteEndObject();
        }
        WriteLine();
    }

    public void Append(EvaluationMetrics e)
    {
        line.ResetWrittenCount();
        using (var w = new Utf8JsonWriter(line, WriterOptions))
        {
            w.WriteStartObject();
            w.WritePropertyName("e");
            JsonSerializer.Serialize(w, e, Json);
            w.WriteEndObject();
        }
        WriteLine();
    }

    void WriteLine()
    {
        file.Write(line.WrittenSpan);
        file.WriteByte((byte)'\n');
    }

    /// <summary>Hands what was appended to the operating system: a killed process loses none of it.</summary>
    public void Flush() => file.Flush(flushToDisk: false);

    /// <summary>Flushes what was appended to the disk (fsync).</summary>
    public void Sync() => file.Flush(flushToDisk: true);

    /// <summary>Everything appended is in PostgreSQL now: start over.</summary>
    public void Clear()
    {
        file.Flush(flushToDisk: false);
        file.SetLength(0);
    }

    /// <summary>Closes the file; removes it when it holds nothing.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        var empty = file.Length == 0;
        file.Flush(flushToDisk: !empty);
        file.Dispose();
        alive.Dispose();
        if (empty) File.Delete(Path);
    }

    /// <summary>Journals of attempts before <paramref name="attempt"/> in <paramref name="folder"/>, oldest first (never a
    /// newer attempt's: that one owns the run, and its journal is its own business).</summary>
    public static IReadOnlyList<string> Earlier(string folder, int attempt) => Directory.Exists(folder)
        ? Directory.GetFiles(folder, "attempt-*.jsonl").Select(p => (Path: p, Attempt: AttemptOf(p))).Where(x => x.Attempt < attempt)
            .OrderBy(x => x.Attempt).ThenBy(x => x.Path, StringComparer.Ordinal).Select(x => x.Path).ToList()
        : [];

    static int AttemptOf(string path) => int.TryParse(System.IO.Path.GetFileName(path).Split('-')[1], out var a) ? a : int.MaxValue;

    /// <summary>Reads a journal another attempt wrote and says whether that attempt has let go of it: decided by an
    /// exclusive open before reading (it fails while the writer lives, and a writer that has closed its journal never
    /// reopens it), so that deleting it after its content is safe elsewhere loses no line. Null when the file is gone or
    /// cannot be read (reported through <paramref name="log"/>).</summary>
    public static (List<PointValue> Points, List<EvaluationMetrics> Evaluations, int Unreadable, bool WriterGone)? Take(string path, Action<string> log)
    {
        try
        {
            FileStream? exclusive = null;
            try { exclusive = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (File.Exists(path)) { /* its writer still has it open */ }
            using var stream = exclusive ?? new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var (points, evaluations, unreadable) = Read(stream);
            return (points, evaluations, unreadable, exclusive is not null);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return null; }   // its writer removed it (empty)
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log($"journal {System.IO.Path.GetFileName(path)} cannot be read ({e.Message}); left in place");
            return null;
        }
    }

    /// <summary>Reads a journal. A line that does not parse (the last one, cut short by a crash) is counted, not read.</summary>
    static (List<PointValue> Points, List<EvaluationMetrics> Evaluations, int Unreadable) Read(Stream stream)
    {
        var points = new List<PointValue>();
        var evaluations = new List<EvaluationMetrics>();
        var unreadable = 0;
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        while (reader.ReadLine() is { } text)
        {
            if (text.Length == 0) continue;
            try
            {
                using var doc = JsonDocument.Parse(text);
                var o = doc.RootElement;
                if (o.TryGetProperty("e", out var e)) evaluations.Add(e.Deserialize<EvaluationMetrics>(Json)!);
                else
                {
                    var v = o.GetProperty("v");
                    var value = v.ValueKind == JsonValueKind.String ? double.Parse(v.GetString()!, System.Globalization.CultureInfo.InvariantCulture) : v.GetDouble();
                    points.Add(new PointValue(o.GetProperty("n").GetString()!, o.GetProperty("s").GetInt64(), o.GetProperty("t").GetInt64(), value));
                }
            }
            catch (Exception x) when (x is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or NotSupportedException)
            {
                unreadable++;
            }
        }
        return (points, evaluations, unreadable);
    }
}
