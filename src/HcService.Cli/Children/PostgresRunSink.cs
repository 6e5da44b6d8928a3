using System.Diagnostics;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Jobs;
using System.Text.Json;
using HcService.Store.Runs;
using Npgsql;

namespace HcService.Cli.Children;

/// <summary>
/// The training child's sink: metric points batched into PostgreSQL (upsert on (run, name, step), so a replayed step
/// overwrites and never duplicates; each point numbered in commit order for the event stream), the run's progress, and
/// checkpoint records, each batch in one transaction. Every write is fenced: it happens only while the run is still
/// running at this attempt, so a zombie attempt writes nothing.
/// Nothing measured is lost: every point and in-loop evaluation goes to the run folder's <see cref="PointJournal"/> as
/// it is reported, the journal reaches the disk before a checkpoint is written, and it is emptied only once PostgreSQL
/// has committed its content. When the database is away (a restart, an outage), training goes on and points stay
/// buffered and journaled; if the outage outlasts the lease, the attempt stops and the next one takes over what it left
/// (<see cref="Recover"/>): its journaled points and the checkpoints it wrote meanwhile. The buffer is bounded: past
/// <see cref="MaxBufferedPoints"/> the attempt fails rather than eat the memory.
/// </summary>
public sealed class PostgresRunSink : IMetricsSink, IDisposable
{
    /// <summary>About two days of a 1 s step with 10 metrics; at 50 bytes a point, 50 MB.</summary>
    public const int MaxBufferedPoints = 1_000_000;
    const int BatchPoints = 2000;

    readonly AttemptWriter writer;
    readonly long runId;
    readonly int attempt;
    readonly string checkpointRoot;
    readonly Action<string> log;
    readonly PointJournal journal;
    readonly List<PointValue> buffer = [];
    readonly List<PointValue> recovered = [];
    readonly List<CheckpointRecord> checkpoints = [];
    readonly List<HcService.Core.Evaluation.EvaluationMetrics> evaluations = [];
    readonly List<HcService.Core.Evaluation.EvaluationMetrics> recoveredEvaluations = [];
    readonly List<CheckpointRecord> recoveredCheckpoints = [];
    readonly Stopwatch sinceTry = Stopwatch.StartNew();
    readonly Stopwatch outage = new();
    TimeSpan backoff = TimeSpan.Zero;
    long step, tokens;
    bool superseded;

    /// <param name="checkpointRoot">The checkpoint store; the run's folder in it holds the journal (journal/).</param>
    public PostgresRunSink(NpgsqlDataSource db, long runId, int attempt, string checkpointRoot, Action<string> log)
    {
        (this.runId, this.attempt, this.checkpointRoot, this.log) = (runId, attempt, checkpointRoot, log);
        writer = new AttemptWriter(db, runId, attempt);
        JournalFolder = Path.Combine(new HcPaths { DataRoot = "", CheckpointRoot = checkpointRoot }.RunFolder(runId), "journal");
        journal = new PointJournal(JournalFolder, attempt);
    }

    /// <summary>Where the run's journals are.</summary>
    public string JournalFolder { get; }

    /// <summary>Points and evaluations not yet committed to PostgreSQL.</summary>
    public int Pending => buffer.Count + recovered.Count + evaluations.Count + recoveredEvaluations.Count;

    /// <summary>
    /// Takes over what earlier attempts of the run left — journaled points and evaluations that never reached PostgreSQL
    /// (copied into this attempt's journal first; an earlier journal is deleted only once its writer has let go of it, so
    /// an attempt that is still stopping keeps writing into a file the next call reads again) and the checkpoints in
    /// <paramref name="checkpointFolder"/> when given (written while the database was away, or never recorded) — and
    /// writes them, filling gaps only. Called before this attempt trains and again when it ends.
    /// </summary>
    public void Recover(string? checkpointFolder)
    {
        long taken = 0;
        var live = 0;
        foreach (var path in PointJournal.Earlier(JournalFolder, attempt))
        {
            // Appended to this attempt's journal and synced before the file is deleted: a crash in between only repeats.
            if (PointJournal.Take(path, log) is not var (points, evals, unreadable, writerGone)) continue;
            foreach (var p in points) { recovered.Add(p); journal.Append(p); }
            foreach (var e in evals) { recoveredEvaluations.Add(e); journal.Append(e); }
            journal.Sync();
            taken += points.Count + evals.Count;
            if (!writerGone) live++;
            else
                try { File.Delete(path); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log($"journal {Path.GetFileName(path)} not deleted: {e.Message}"); }
            if (unreadable > 0) log($"{Path.GetFileName(path)}: {unreadable} unreadable line(s) (cut short by a crash) skipped");
        }
        if (taken > 0) log($"recovered {taken} metric point(s) and evaluation(s) that an earlier attempt had not written{(live > 0 ? $" ({live} journal(s) still open: read again at the end)" : "")}");
        foreach (var (_, path) in checkpointFolder is null ? [] : new CheckpointStore(checkpointFolder).List())
        {
            // One unreadable file is reported and passed over (as a resume passes over it); it never fails the attempt.
            try { recoveredCheckpoints.Add(CheckpointStore.ReadRecord(path)); }
            catch (Exception e) when (e is not OutOfMemoryException) { log($"checkpoint {Path.GetFileName(path)} not recorded: {e.Message}"); }
        }
        // An attempt that resumes at its run's last step reports no step of its own: its progress is the checkpoint it
        // resumes from (the newest on disk).
        if (step == 0 && recoveredCheckpoints.MaxBy(c => c.Step) is { } newest) (step, tokens) = (newest.Step, newest.Tokens);
        if (taken > 0 || recoveredCheckpoints.Count > 0) TryFlush();
    }

    public void OnStep(StepMetrics m)
    {
        (step, tokens) = (m.Step, m.Tokens);
        foreach (var (name, value) in m.Named()) Add(new PointValue(name, m.Step, m.Tokens, value));
        journal.Flush();
        if (buffer.Count >= BatchPoints || sinceTry.Elapsed > TimeSpan.FromSeconds(2)) TryFlush();
    }

    void Add(PointValue p)
    {
        buffer.Add(p);
        journal.Append(p);
    }

    public void OnValidation(ValidationMetrics m)
    {
        foreach (var (name, value) in m.Named()) Add(new PointValue(name, m.Step, m.Tokens, value));
        journal.Flush();
        TryFlush();
    }

    /// <summary>The points of every step up to the checkpoint are in PostgreSQL, or on the disk in the journal, before the
    /// checkpoint file exists: a resume from it never skips a step.</summary>
    public void BeforeCheckpoint(long step)
    {
        TryFlush();
        journal.Sync();
    }

    public void OnCheckpoint(CheckpointRecord c)
    {
        checkpoints.Add(c);
        TryFlush();
    }

    public void OnEvaluation(HcService.Core.Evaluation.EvaluationMetrics m)
    {
        evaluations.Add(m);
        journal.Append(m);
        journal.Flush();
        TryFlush();
    }

    /// <summary>Closes the journal: removed when PostgreSQL has everything, kept on the disk for the next attempt otherwise.</summary>
    public void Dispose() => journal.Dispose();

    /// <summary>Writes what is buffered unless the database was found away moments ago; an outage only delays writes.</summary>
    public void TryFlush()
    {
        if (sinceTry.Elapsed < backoff) { CheckBound(); return; }
        sinceTry.Restart();
        try
        {
            WriteAll();
            if (outage.IsRunning) log($"database back after {outage.Elapsed.TotalSeconds:0.0} s: buffered metric points written");
            outage.Reset();
            backoff = TimeSpan.Zero;
        }
        catch (Exception e) when (DbRetry.IsTransient(e))
        {
            if (!outage.IsRunning) { outage.Start(); log($"database unavailable ({e.Message.Split('\n')[0]}): buffering metric points"); }
            backoff = TimeSpan.FromSeconds(Math.Clamp(backoff.TotalSeconds * 2, 1, 10));
            CheckBound();
        }
    }

    void CheckBound()
    {
        if (buffer.Count > MaxBufferedPoints)
            throw new InvalidOperationException($"the database has been unreachable for {outage.Elapsed.TotalSeconds:0} s and {buffer.Count} metric points are buffered (the bound is {MaxBufferedPoints}); the attempt stops here");
    }

    /// <summary>Writes everything, retrying through an outage for up to <paramref name="budget"/> (the end of an attempt).</summary>
    public void Flush(TimeSpan budget) => DbRetry.Run(WriteAll, budget, log);

    void WriteAll()
    {
        var committed = writer.Commit(new AttemptBatch
        {
            Points = buffer,
            RecoveredPoints = recovered,
            Checkpoints = [.. checkpoints.Select(Row)],
            RecoveredCheckpoints = [.. recoveredCheckpoints.Select(Row)],
            // Retention removed older files: their records go too, so that every listed checkpoint can be downloaded.
            KeptCheckpointSteps = checkpoints.Concat(recoveredCheckpoints).LastOrDefault() is { } any
                ? [.. new CheckpointStore(Path.GetDirectoryName(any.Path)!).List().Select(x => x.Step)] : null,
            Evaluations = [.. evaluations.Select(e => new EvaluationRows(e.Step, e.Results))],
            RecoveredEvaluations = [.. recoveredEvaluations.Select(e => new EvaluationRows(e.Step, e.Results))],
            // Progress only from this attempt's own steps (a resumed attempt's first write, of what it recovered, must not
            // set the run back to step 0).
            Progress = step > 0 ? (step, tokens) : null,
        });
        if (!committed && !superseded)
            // Superseded (a newer attempt has the run) or ended: this attempt writes nothing. Its journal stays on the disk;
            // the attempt that has the run takes what it lacks from it when it ends (Recover).
            log($"run {runId} is no longer running at attempt {attempt}: {Pending} point(s) left in {Path.GetFileName(journal.Path)}");
        superseded |= !committed;
        recovered.Clear();
        buffer.Clear();
        checkpoints.Clear();
        evaluations.Clear();
        recoveredEvaluations.Clear();
        recoveredCheckpoints.Clear();
        if (committed) journal.Clear();
    }

    CheckpointRow Row(CheckpointRecord c) => new(c.Step, c.Tokens, c.Bytes, c.Sha256, Path.GetRelativePath(checkpointRoot, c.Path));
}
