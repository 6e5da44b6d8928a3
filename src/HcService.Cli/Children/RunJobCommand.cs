using System.CommandLine;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Core.Counting;
using HcService.Contract.Jobs;
using HcService.Core.Training;
using HcService.Store;
using HcService.Store.Runs;
using Npgsql;
using HcService.Cli.Processes;
using HcService.Cli.Worker;

namespace HcService.Cli.Children;

/// <summary>
/// `hc run-job --run-id N --attempt A`: the training child process a worker starts for one run attempt (docs/design.md
/// section 1.3). It reads the run's spec and resolved plan from PostgreSQL, trains with the core, writes metrics, checkpoint records and the
/// final status (all fenced by the attempt), and stops within seconds of a cancel request after a final checkpoint.
/// It also stops, after a checkpoint of its current step and without a final status, on SIGTERM or SIGINT (its worker is
/// shutting down, or an operator asked) or when its worker disappears (SIGKILL, a crash: the child notices its parent is
/// gone); it then hands the run back, so that it is queued again at once and resumes from that step on any worker (exit
/// code <see cref="ExitRequeue"/>). When a newer attempt has taken the run over, it stops at once without a checkpoint.
/// A database restart is waited out: points are buffered and every write is retried.
/// Settings come from the environment the worker passes: ConnectionStrings__hc, HC_DATA_ROOT, HC_CHECKPOINT_ROOT.
/// </summary>
static class RunJobCommand
{
    /// <summary>The attempt ended without a final status and its run should be requeued (EX_TEMPFAIL).</summary>
    public const int ExitRequeue = 75;
    static readonly TimeSpan WriteBudget = TimeSpan.FromMinutes(10);
    /// <summary>Reasons to stop that hand the run back instead of ending it: SIGTERM or SIGINT (from the worker, which is
    /// stopping, or from an operator), or the worker process gone.</summary>
    const string StopSignal = "stop requested (SIGTERM/SIGINT)", WorkerGone = "worker gone";

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

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int getppid();

    static int Run(long runId, int attempt)
    {
        using var signals = new StopSignals();   // SIGTERM/SIGINT: checkpoint this step and hand the run back
        var terminate = signals.Token;
        var (connectionString, settings) = ChildRunner.Settings();
        var paths = settings.Paths;
        var parent = ChildRunner.WorkerPid(getppid);
        using var db = NpgsqlDataSource.Create(connectionString);
        var lifecycle = new RunLifecycle(db, settings.Leases);

        if (DbRetry.Run(() => lifecycle.HeldRunAsync(runId, attempt, CancellationToken.None).GetAwaiter().GetResult(), WriteBudget, Console.Error.WriteLine)
            is not { } row)
        {
            Console.Error.WriteLine($"run {runId} attempt {attempt} is not running: nothing to do");
            return 0;
        }

        var device = DeviceQueues.DeviceOf(row.Queue);
        using var cancel = new CancellationTokenSource();    // checkpoint, then stop
        using var abandon = new CancellationTokenSource();   // stop now: a newer attempt owns the run
        var why = "";   // the first reason to stop wins
        void Stop(CancellationTokenSource source, string reason)
        {
            Interlocked.CompareExchange(ref why, reason, "");
            try { source.Cancel(); } catch (ObjectDisposedException) { /* the run has ended */ }
        }
        // Self-fencing: when this attempt cannot confirm it still owns the run for most of a lease (a partition from the
        // database), a reaper elsewhere may have requeued it; stop without writing another checkpoint file.
        var confirmed = System.Diagnostics.Stopwatch.StartNew();
        var unconfirmedLimit = lifecycle.Options.Duration - lifecycle.Options.Heartbeat;
        using var onTerminate = terminate.Register(() => Stop(cancel, StopSignal));
        using var watcher = new Timer(_ =>
        {
            if (getppid() != parent) Stop(cancel, WorkerGone);
            try
            {
                var check = lifecycle.CheckAsync(runId, attempt, CancellationToken.None).GetAwaiter().GetResult();
                if (!check.Holds) Stop(abandon, "superseded");
                else
                {
                    confirmed.Restart();
                    if (check.CancelRequested) Stop(cancel, "cancel requested");
                }
            }
            catch (Exception e) when (DbRetry.IsTransient(e) || e is ObjectDisposedException or PostgresException)
            {
                // The database is away (or the run has just ended): keep training, ask again next tick, unless too long.
                if (confirmed.Elapsed > unconfirmedLimit) Stop(abandon, "superseded");
            }
        }, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

        using var sink = new PostgresRunSink(db, runId, attempt, paths.CheckpointRoot, Console.Error.WriteLine);
        var checkpointFolder = TrainingRun.CheckpointFolder(paths.RunFolder(runId));
        // What earlier attempts measured or checkpointed while the database was away reaches it before this one trains.
        sink.Recover(checkpointFolder);
        string status;
        string? reason;
        try
        {
            var job = JobSpec.Parse(row.Spec);
            // Resolved once, by the API when the run was submitted.
            var plan = JobPlan.Stored(row.Plan, job, device);
            var options = new RunOptions(paths.DataRoot, paths.RunFolder(runId), device,
                device == DeviceKind.Cuda ? DevicePeak.CudaBf16 : CpuPeak.MeasureMatmul());
            var result = new TrainingRun(job, plan, options, [sink, new RelaySink()], Console.WriteLine).Run(cancel.Token, abandon.Token);
            if (why == "superseded")
            {
                Console.WriteLine($"run {runId} attempt {attempt}: a newer attempt has the run; stopped at step {result.Step} without writing");
                return ExitRequeue;
            }
            // And what an attempt this one superseded wrote after this one began (it stops within a lease).
            sink.Recover(checkpointFolder: null);
            sink.Flush(WriteBudget);
            sink.Dispose();   // the journal, empty now, is gone before the run's end is recorded
            var end = EndOf(result.Outcome, result.Reason, why);
            if (end is null)
            {
                // Not a user's cancel: hand the run back, to resume from the checkpoint of this very step.
                var handback = $"{why} at step {result.Step}: checkpointed and handed back";
                var run = DbRetry.Run(() => lifecycle.HandBackAsync(runId, attempt, handback, CancellationToken.None).GetAwaiter().GetResult(), WriteBudget, Console.Error.WriteLine);
                Console.WriteLine($"run {runId} attempt {attempt}: {handback}{(run is null ? " (the run had moved on)" : $"; the run is {run.Status}")}");
                return ExitRequeue;
            }
            (status, reason) = end.Value;
        }
        catch (ConfigException e) { (status, reason) = (RunStatus.Failed, "invalid spec: " + e.Message); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException) { (status, reason) = (RunStatus.Failed, "invalid stored plan: " + e.Message); }

        DbRetry.Run(() => lifecycle.FinishAsync(runId, attempt, status, reason, CancellationToken.None).GetAwaiter().GetResult(), WriteBudget, Console.Error.WriteLine);
        Console.WriteLine($"run {runId} attempt {attempt}: {status}{(reason is null ? "" : ": " + reason)}");
        return status == RunStatus.Failed ? 1 : 0;
    }

    /// <summary>How an attempt that trained ends, from how its training loop ended and the first reason it was given to
    /// stop: null to hand the run back (a stop signal or a vanished worker, not a user's cancel), else the run's final
    /// status and reason. A loop that stopped, or was then cut short by a takeover, ends as the user's cancel asked.</summary>
    internal static (string Status, string? Reason)? EndOf(RunOutcome outcome, string? reason, string why) => outcome switch
    {
        RunOutcome.Stopped or RunOutcome.Abandoned when why is StopSignal or WorkerGone => null,
        RunOutcome.Succeeded => (RunStatus.Succeeded, null),
        RunOutcome.Stopped or RunOutcome.Abandoned => (RunStatus.Cancelled, reason),
        _ => (RunStatus.Failed, reason),
    };

    /// <summary>The reasons to stop that hand the run back (for tests).</summary>
    internal static readonly string[] HandBackReasons = [StopSignal, WorkerGone];
}
