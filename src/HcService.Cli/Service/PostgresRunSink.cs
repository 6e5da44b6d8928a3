using System.Globalization;
using HcService.Core.Training;
using HcService.Store;
using Npgsql;

namespace HcService.Cli.Service;

/// <summary>
/// The training child's sink: metric points batched into PostgreSQL (upsert on (run, name, step), so a replayed step
/// overwrites and never duplicates), the run's progress, and checkpoint records. Every write is fenced by the attempt
/// number: an attempt that is no longer the run's current one writes nothing.
/// </summary>
public sealed class PostgresRunSink(NpgsqlDataSource db, long runId, int attempt, string checkpointRoot) : IMetricsSink, IDisposable
{
    readonly List<(string Name, long Step, long Tokens, double Value)> buffer = [];
    DateTime lastFlush = DateTime.UtcNow;
    long step, tokens;

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
        if (buffer.Count >= 500 || DateTime.UtcNow - lastFlush > TimeSpan.FromSeconds(2)) Flush();
    }

    void Add(string name, StepMetrics m, double value) => buffer.Add((name, m.Step, m.Tokens, value));

    public void OnValidation(ValidationMetrics m)
    {
        buffer.Add(($"val/{m.Dataset}/loss", m.Step, m.Tokens, m.Loss));
        buffer.Add(($"val/{m.Dataset}/perplexity", m.Step, m.Tokens, m.Perplexity));
        Flush();
    }

    public void OnCheckpoint(CheckpointRecord c)
    {
        Flush();
        var location = Path.GetRelativePath(checkpointRoot, c.Path);
        Execute("""
            INSERT INTO hc.checkpoints ("RunId", "Step", "Tokens", "Bytes", "Sha256", "Location", "CreatedAt")
            SELECT @run, @step, @tokens, @bytes, @sha, @loc, now() FROM hc.runs WHERE "Id" = @run AND "Attempt" = @attempt
            ON CONFLICT ("RunId", "Step") DO UPDATE SET "Tokens" = excluded."Tokens", "Bytes" = excluded."Bytes",
                "Sha256" = excluded."Sha256", "Location" = excluded."Location", "CreatedAt" = excluded."CreatedAt"
            """, cmd =>
        {
            cmd.Parameters.AddWithValue("step", c.Step);
            cmd.Parameters.AddWithValue("tokens", c.Tokens);
            cmd.Parameters.AddWithValue("bytes", c.Bytes);
            cmd.Parameters.AddWithValue("sha", c.Sha256);
            cmd.Parameters.AddWithValue("loc", location);
        });
        // Retention removed older files: drop their records too, so every listed checkpoint can be downloaded.
        var kept = Directory.Exists(Path.GetDirectoryName(c.Path)) ? new CheckpointStore(Path.GetDirectoryName(c.Path)!).List().Select(x => x.Step).ToArray() : [];
        Execute("""DELETE FROM hc.checkpoints WHERE "RunId" = @run AND NOT ("Step" = ANY(@kept)) AND EXISTS (SELECT 1 FROM hc.runs WHERE "Id" = @run AND "Attempt" = @attempt)""",
            cmd => cmd.Parameters.AddWithValue("kept", kept));
    }

    /// <summary>Writes buffered points and the run's progress.</summary>
    public void Flush()
    {
        lastFlush = DateTime.UtcNow;
        if (buffer.Count > 0)
        {
            Execute("""
                INSERT INTO hc.metric_points ("RunId", "Name", "Step", "Tokens", "Value", "Time")
                SELECT @run, n, s, t, v, now() FROM unnest(@names, @steps, @tokens, @values) AS x(n, s, t, v)
                WHERE EXISTS (SELECT 1 FROM hc.runs WHERE "Id" = @run AND "Attempt" = @attempt)
                ON CONFLICT ("RunId", "Name", "Step") DO UPDATE SET "Value" = excluded."Value", "Tokens" = excluded."Tokens", "Time" = excluded."Time"
                """, cmd =>
            {
                cmd.Parameters.AddWithValue("names", buffer.Select(b => b.Name).ToArray());
                cmd.Parameters.AddWithValue("steps", buffer.Select(b => b.Step).ToArray());
                cmd.Parameters.AddWithValue("tokens", buffer.Select(b => b.Tokens).ToArray());
                cmd.Parameters.AddWithValue("values", buffer.Select(b => double.IsFinite(b.Value) ? b.Value : double.NaN).ToArray());
            });
            buffer.Clear();
        }
        Execute("""UPDATE hc.runs SET "Step" = @step, "Tokens" = @tok, "UpdatedAt" = now() WHERE "Id" = @run AND "Attempt" = @attempt""", cmd =>
        {
            cmd.Parameters.AddWithValue("step", step);
            cmd.Parameters.AddWithValue("tok", tokens);
        });
    }

    void Execute(string sql, Action<NpgsqlCommand> bind)
    {
        using var cmd = db.CreateCommand(sql);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("attempt", attempt);
        bind(cmd);
        cmd.ExecuteNonQuery();
    }

    public void Dispose() => Flush();

}
