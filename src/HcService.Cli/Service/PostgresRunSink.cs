using System.Diagnostics;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Jobs;
using System.Text.Json;
using Npgsql;

namespace HcService.Cli.Service;

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
    const string ReplaceCheckpoint = """
        DO UPDATE SET "Tokens" = excluded."Tokens", "Bytes" = excluded."Bytes", "Sha256" = excluded."Sha256", "Location" = excluded."Location", "CreatedAt" = excluded."CreatedAt"
        """;
    const string Fence = """EXISTS (SELECT 1 FROM hc.runs WHERE "Id" = @run AND "Attempt" = @attempt AND "Status" IN ('running', 'cancelling'))""";

    readonly NpgsqlDataSource db;
    readonly long runId;
    readonly int attempt;
    readonly string checkpointRoot;
    readonly Action<string> log;
    readonly PointJournal journal;
    readonly List<MetricPoint> buffer = [];
    readonly List<MetricPoint> recovered = [];
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
        (this.db, this.runId, this.attempt, this.checkpointRoot, this.log) = (db, runId, attempt, checkpointRoot, log);
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
        Add("train/loss", m, m.Loss);
        Add("train/cross_entropy", m, m.CrossEntropy);
        Add("train/lr", m, m.Lr);
        Add("train/grad_norm", m, m.GradNorm);
        Add("train/tokens_per_second", m, m.TokensPerSecond);
        Add("train/step_seconds", m, m.StepSeconds);
        Add("train/mfu", m, m.Mfu);
        if (m.LoadBalancingLoss is { } lb) Add("train/load_balancing_loss", m, lb);
        if (m.RouterZLoss is { } z) Add("train/router_z_loss", m, z);
        if (m.ExpertTokens is { } experts)
            for (var l = 0; l < experts.Count; l++)
                for (var e = 0; e < experts[l].Length; e++) Add($"moe/expert_tokens/l{l}/e{e}", m, experts[l][e]);
        if (m.Hc is { } hc) foreach (var (name, value) in hc) Add(name.Replace('.', '/'), m, value);
        journal.Flush();
        if (buffer.Count >= BatchPoints || sinceTry.Elapsed > TimeSpan.FromSeconds(2)) TryFlush();
    }

    void Add(string name, StepMetrics m, double value) => Add(new MetricPoint(name, m.Step, m.Tokens, value));

    void Add(MetricPoint p)
    {
        buffer.Add(p);
        journal.Append(p);
    }

    public void OnValidation(ValidationMetrics m)
    {
        Add(new MetricPoint($"val/{m.Dataset}/loss", m.Step, m.Tokens, m.Loss));
        Add(new MetricPoint($"val/{m.Dataset}/perplexity", m.Step, m.Tokens, m.Perplexity));
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
        using var conn = db.OpenConnection();
        using var tx = conn.BeginTransaction();
        // The run's row lock first: the points' sequence numbers are then drawn in the order the run's writes commit, so
        // an event stream reading "after number N" can never skip a point that commits late.
        bool ours;
        using (var fence = new NpgsqlCommand("""SELECT "Attempt" = @attempt AND "Status" IN ('running', 'cancelling') FROM hc.runs WHERE "Id" = @run FOR NO KEY UPDATE""", conn))
        {
            fence.Parameters.AddWithValue("run", runId);
            fence.Parameters.AddWithValue("attempt", attempt);
            ours = fence.ExecuteScalar() is true;
        }
        if (!ours)
        {
            // Superseded (a newer attempt has the run) or ended: this attempt writes nothing. Its journal stays on the disk;
            // the attempt that has the run takes what it lacks from it when it ends (Recover).
            if (!superseded) log($"run {runId} is no longer running at attempt {attempt}: {Pending} point(s) left in {Path.GetFileName(journal.Path)}");
            superseded = true;
            buffer.Clear();
            recovered.Clear();
            checkpoints.Clear();
            evaluations.Clear();
            recoveredEvaluations.Clear();
            recoveredCheckpoints.Clear();
            return;
        }
        // Points an earlier attempt left fill gaps only; this attempt's own points replace what is stored for their step.
        InsertPoints(conn, recovered, "DO NOTHING");
        InsertPoints(conn, buffer, """
            DO UPDATE SET "Value" = excluded."Value", "Tokens" = excluded."Tokens", "Time" = excluded."Time",
                -- A replayed step with the same value is not news; a new value is streamed again.
                "Seq" = CASE WHEN hc.metric_points."Value" IS DISTINCT FROM excluded."Value" THEN excluded."Seq" ELSE hc.metric_points."Seq" END
            """);
        // This attempt's checkpoints replace their records; ones found on disk (recovered) only add missing records.
        foreach (var (c, recoveredRecord) in checkpoints.Select(c => (c, false)).Concat(recoveredCheckpoints.Select(c => (c, true))))
            Execute(conn, $"""
                INSERT INTO hc.checkpoints ("RunId", "Step", "Tokens", "Bytes", "Sha256", "Location", "CreatedAt")
                SELECT @run, @step, @tokens, @bytes, @sha, @loc, now() WHERE {Fence}
                ON CONFLICT ("RunId", "Step") {(recoveredRecord ? "DO NOTHING" : ReplaceCheckpoint)}
                """, cmd =>
            {
                cmd.Parameters.AddWithValue("step", c.Step);
                cmd.Parameters.AddWithValue("tokens", c.Tokens);
                cmd.Parameters.AddWithValue("bytes", c.Bytes);
                cmd.Parameters.AddWithValue("sha", c.Sha256);
                cmd.Parameters.AddWithValue("loc", Path.GetRelativePath(checkpointRoot, c.Path));
            });
        if (checkpoints.Concat(recoveredCheckpoints).LastOrDefault() is { } any)
        {
            // Retention removed older files: drop their records too, so that every listed checkpoint can be downloaded.
            var folder = Path.GetDirectoryName(any.Path)!;
            var kept = new CheckpointStore(folder).List().Select(x => x.Step).ToArray();
            Execute(conn, $"""DELETE FROM hc.checkpoints WHERE "RunId" = @run AND NOT ("Step" = ANY(@kept)) AND {Fence}""",
                cmd => cmd.Parameters.AddWithValue("kept", kept));
        }
        foreach (var e in evaluations)
            EvaluationStore.Write(conn, runId, e.Step, e.Results, Fence, cmd => cmd.Parameters.AddWithValue("attempt", attempt));
        foreach (var e in recoveredEvaluations)
            EvaluationStore.Write(conn, runId, e.Step, e.Results, Fence, cmd => cmd.Parameters.AddWithValue("attempt", attempt), fillGapsOnly: true);
        // Progress only from this attempt's own steps (a resumed attempt's first write, of what it recovered, must not
        // set the run back to step 0).
        if (step > 0)
            Execute(conn, $"""UPDATE hc.runs SET "Step" = @step, "Tokens" = @tok, "UpdatedAt" = now() WHERE "Id" = @run AND "Attempt" = @attempt AND "Status" IN ('running', 'cancelling')""", cmd =>
            {
                cmd.Parameters.AddWithValue("step", step);
                cmd.Parameters.AddWithValue("tok", tokens);
            });
        // Wakes the event streams following this run, on commit.
        Execute(conn, "SELECT pg_notify('hc_run_metrics', @run::text)", _ => { });
        tx.Commit();
        recovered.Clear();
        buffer.Clear();
        checkpoints.Clear();
        evaluations.Clear();
        recoveredEvaluations.Clear();
        recoveredCheckpoints.Clear();
        journal.Clear();
    }

    void InsertPoints(NpgsqlConnection conn, List<MetricPoint> points, string onConflict)
    {
        for (var from = 0; from < points.Count; from += 50_000)
        {
            var batch = points.GetRange(from, Math.Min(50_000, points.Count - from));
            Execute(conn, $"""
                INSERT INTO hc.metric_points ("RunId", "Name", "Step", "Tokens", "Value", "Time")
                SELECT @run, n, s, t, v, now() FROM unnest(@names, @steps, @tokens, @values) AS x(n, s, t, v)
                ON CONFLICT ("RunId", "Name", "Step") {onConflict}
                """, cmd =>
            {
                cmd.Parameters.AddWithValue("names", batch.Select(b => b.Name).ToArray());
                cmd.Parameters.AddWithValue("steps", batch.Select(b => b.Step).ToArray());
                cmd.Parameters.AddWithValue("tokens", batch.Select(b => b.Tokens).ToArray());
                cmd.Parameters.AddWithValue("values", batch.Select(b => double.IsFinite(b.Value) ? b.Value : double.NaN).ToArray());
            });
        }
    }

    void Execute(NpgsqlConnection conn, string sql, Action<NpgsqlCommand> bind)
    {
        using var cmd = new NpgsqlCommand(sql, conn);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("attempt", attempt);
        bind(cmd);
        cmd.ExecuteNonQuery();
    }
}
