using System.CommandLine;
using HcService.Core.Config;
using HcService.Core.Counting;
using HcService.Core.Jobs;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Jobs;
using Npgsql;

namespace HcService.Cli.Service;

/// <summary>
/// `hc run-job --run-id N --attempt A`: the training child process a worker starts for one run attempt (DESIGN.md
/// section 2). It reads the run's spec from PostgreSQL, trains with the core, writes metrics, checkpoint records and the
/// final status (all fenced by the attempt), and stops within seconds of a cancel request after a final checkpoint.
/// Settings come from the environment the worker passes: ConnectionStrings__hc, HC_DATA_ROOT, HC_CHECKPOINT_ROOT.
/// </summary>
static class RunJobCommand
{
    public static Command Create()
    {
        var runId = new Option<long>("--run-id") { Required = true };
        var attempt = new Option<int>("--attempt") { Required = true };
        var cmd = new Command("run-job", "(internal) Train one run attempt for a worker") { Hidden = true };
        cmd.Add(runId);
        cmd.Add(attempt);
        cmd.SetAction(r => Run(r.GetValue(runId), r.GetValue(attempt)));
        return cmd;
    }

    static int Run(long runId, int attempt)
    {
        var connectionString = Environment.GetEnvironmentVariable("ConnectionStrings__hc") ?? throw new InvalidOperationException("ConnectionStrings__hc is not set");
        var paths = new HcPaths
        {
            DataRoot = Environment.GetEnvironmentVariable("HC_DATA_ROOT") ?? throw new InvalidOperationException("HC_DATA_ROOT is not set"),
            CheckpointRoot = Environment.GetEnvironmentVariable("HC_CHECKPOINT_ROOT") ?? throw new InvalidOperationException("HC_CHECKPOINT_ROOT is not set"),
        };
        using var db = NpgsqlDataSource.Create(connectionString);

        string spec, queue;
        using (var cmd = db.CreateCommand("""SELECT "Spec", "Queue" FROM hc.runs WHERE "Id" = @id AND "Attempt" = @a AND "Status" IN ('running', 'cancelling')"""))
        {
            cmd.Parameters.AddWithValue("id", runId);
            cmd.Parameters.AddWithValue("a", attempt);
            using var reader = cmd.ExecuteReader();
            if (!reader.Read()) { Console.Error.WriteLine($"run {runId} attempt {attempt} is not running: nothing to do"); return 0; }
            (spec, queue) = (reader.GetString(0), reader.GetString(1));
        }

        var device = queue == "cuda" ? DeviceKind.Cuda : DeviceKind.Cpu;
        using var cts = new CancellationTokenSource();
        using var watcher = new Timer(_ =>
        {
            try
            {
                using var cmd = db.CreateCommand("""SELECT "CancelRequested" OR "Attempt" <> @a FROM hc.runs WHERE "Id" = @id""");
                cmd.Parameters.AddWithValue("id", runId);
                cmd.Parameters.AddWithValue("a", attempt);
                if (cmd.ExecuteScalar() is true) cts.Cancel();
            }
            catch (NpgsqlException) { /* the database is away: keep training, ask again next tick */ }
        }, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

        using var sink = new PostgresRunSink(db, runId, attempt, paths.CheckpointRoot);
        string status;
        string? reason;
        try
        {
            var job = JobSpec.Parse(spec);
            var options = new RunOptions(paths.DataRoot, paths.RunFolder(runId), device,
                device == DeviceKind.Cuda ? DevicePeak.CudaBf16 : DevicePeak.MeasureCpuMatmul());
            var result = new TrainingRun(job, options, [sink], Console.WriteLine).Run(cts.Token);
            sink.Flush();
            (status, reason) = result.Outcome switch
            {
                RunOutcome.Succeeded => (RunStatus.Succeeded, null),
                RunOutcome.Cancelled => (RunStatus.Cancelled, result.Reason),
                _ => (RunStatus.Failed, result.Reason),
            };
        }
        catch (ConfigException e) { (status, reason) = (RunStatus.Failed, "invalid spec: " + e.Message); }

        using (var cmd = db.CreateCommand("""
            UPDATE hc.runs SET "Status" = @s, "FailureReason" = @r, "FinishedAt" = now(), "UpdatedAt" = now()
            WHERE "Id" = @id AND "Attempt" = @a AND "Status" IN ('running', 'cancelling')
            """))
        {
            cmd.Parameters.AddWithValue("id", runId);
            cmd.Parameters.AddWithValue("a", attempt);
            cmd.Parameters.AddWithValue("s", status);
            cmd.Parameters.AddWithValue("r", (object?)reason ?? DBNull.Value);
            cmd.ExecuteNonQuery();
        }
        Console.WriteLine($"run {runId} attempt {attempt}: {status}{(reason is null ? "" : ": " + reason)}");
        return status == RunStatus.Failed ? 1 : 0;
    }
}
