using Microsoft.Extensions.Logging;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Hangfire;
using Npgsql;
using HcService.Cli.Children;
using HcService.Cli.Processes;

namespace HcService.Cli.Worker;

/// <summary>
/// The worker's side of a training job (docs/design.md section 5): start an attempt of the run under a lease (queued -> running, attempt + 1),
/// run the attempt in a child process (`hc run-job`), and renew the lease by heartbeat while it trains. When the lease
/// is lost (the run was reaped and requeued elsewhere) the child is killed; when the worker is stopping the child is
/// asked to checkpoint and hand the run back; when the child dies without recording an end (native crash, OOM kill,
/// SIGKILL) the run fails with the exit code and the tail of its stderr. A crash never takes the worker down.
/// </summary>
public sealed class RunExecutor(string connectionString, HcPaths paths, RunLifecycle lifecycle, WorkerState state,
    IBackgroundJobClient jobs, TimeSpan stopTimeout, ILogger log) : IRunExecutor
{
    static readonly TimeSpan WriteBudget = TimeSpan.FromMinutes(5);

    public async Task ExecuteAsync(long runId, CancellationToken shutdown)
    {
        if (await lifecycle.StartAttemptAsync(runId, state.Name, shutdown) is not { } start) return;   // not queued: a duplicate dispatch
        var attempt = start.Attempt;
        HcInstruments.DispatchLatency.Record(start.QueuedSeconds, new KeyValuePair<string, object?>("queue", start.Queue));
        // The attempt's span, linked to the request that submitted the run (its trace ended when the API answered).
        ActivityLink[] links = ActivityContext.TryParse(start.TraceParent, null, out var submitted) ? [new ActivityLink(submitted)] : [];
        using var span = HcInstruments.Source.StartActivity(ActivityKind.Consumer, parentContext: default, name: "hc.run.attempt", links: links,
            tags: [new("hc.run_id", runId), new("hc.attempt", attempt), new("hc.run_name", start.Name), new("hc.preset", start.Preset),
                   new("hc.architecture", start.Architecture), new("hc.connection", start.Connection), new("hc.rate", start.Rate), new("hc.worker", state.Name)]);
        state.Started(runId, start);
        try
        {
            var outcome = await RunChild(runId, attempt, shutdown);
            span?.SetTag("hc.outcome", outcome);
            HcInstruments.RunAttempts.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The attempt could not run (no child...): end it as failed instead of leaving it to the lease.
            await DbRetry.RunAsync(ct => lifecycle.FinishAsync(runId, attempt, RunStatus.Failed, $"worker error: {e.GetType().Name}: {e.Message}", ct),
                WriteBudget, m => log.LogWarning("{Message}", m), CancellationToken.None);
            throw;
        }
        finally { state.Idle(); }
    }

    /// <summary>Runs the attempt's child; returns how the attempt ended (succeeded, failed, cancelled, stopped, lost).</summary>
    async Task<string> RunChild(long runId, int attempt, CancellationToken shutdown)
    {
        using var runner = ChildRunner.Start(["run-job", "--run-id", runId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--attempt", attempt.ToString(System.Globalization.CultureInfo.InvariantCulture)], connectionString, paths, $"run {runId}", log, state.Training.Relay(runId));
        var child = runner.Process;
        log.LogInformation("run {RunId} attempt {Attempt}: started child process {ChildPid} (lease holder {Worker})", runId, attempt, child.Id, state.Name);

        using var stopHeartbeat = new CancellationTokenSource();
        var heartbeat = Heartbeat(runId, attempt, child, stopHeartbeat.Token);
        try { await child.WaitForExitAsync(shutdown); }
        catch (OperationCanceledException)
        {
            // The worker is stopping: the child checkpoints its current step and hands the run back (SIGTERM).
            log.LogInformation("run {RunId} attempt {Attempt}: worker stopping; asking the training process to checkpoint and hand the run back", runId, attempt);
            var stoppedInTime = await ChildRunner.StopGracefully(child, stopTimeout);
            // Normally the child has handed the run back itself (then this is fenced out). If it was killed after the
            // timeout, or died before it could handle the signal, hand it back from here: it resumes from its latest checkpoint.
            var why = stoppedInTime ? $"the training process exited with code {child.ExitCode} before it could checkpoint"
                : $"the training process did not stop within {stopTimeout.TotalSeconds:0} s and was killed";
            // Best effort, and nothing here may replace the stop: if it fails, the lease simply expires.
            try { await lifecycle.HandBackAsync(runId, attempt, $"worker stopping: {why}", CancellationToken.None); }
            catch (Exception e) { log.LogWarning("run {RunId}: not handed back ({Error}); its lease will expire", runId, e.Message.Split('\n')[0]); }
            await stopHeartbeat.CancelAsync();
            await EnqueueHandedBack(runId);
            throw;
        }
        await stopHeartbeat.CancelAsync();
        await heartbeat;

        if (child.ExitCode == RunJobCommand.ExitRequeue)
        {
            await EnqueueHandedBack(runId);
            return AttemptOutcome.Stopped;
        }
        var reason = $"training process exited with code {child.ExitCode}{Signal(child.ExitCode)} without recording an end; stderr tail: {runner.StderrTail()}";
        // Fenced: a no-op when the child recorded its end (or a newer attempt has the run).
        // A process that dies while it stops for a cancel ends the run cancelled (what was asked), saying how it died.
        var whenCancelled = (RunStatus.Cancelled, $"cancelled; the training process exited with code {child.ExitCode}{Signal(child.ExitCode)} while stopping, before its final checkpoint");
        var ended = await DbRetry.RunAsync(ct => lifecycle.FinishAsync(runId, attempt, RunStatus.Failed, reason, ct, whenCancelled), WriteBudget, m => log.LogWarning("{Message}", m), CancellationToken.None);
        var outcome = await lifecycle.OutcomeAsync(runId, attempt, CancellationToken.None) ?? AttemptOutcome.Lost;
        log.LogInformation("run {RunId} attempt {Attempt}: child exited with {ExitCode}{Outcome}", runId, attempt, child.ExitCode, ended ? $" -> {outcome}" : "");
        return outcome;
    }

    /// <summary>A run its attempt handed back is queued without a Hangfire job: give it one now, so that it resumes at once
    /// (on this worker, or on any other when this one is stopping). When the database is away the reaper does it later.</summary>
    async Task EnqueueHandedBack(long runId)
    {
        try
        {
            if (await lifecycle.UnenqueuedQueueAsync(runId, CancellationToken.None) is { } queue)
                await RunQueue.EnqueueAsync(lifecycle, jobs, runId, queue, CancellationToken.None);
        }
        catch (Exception e) when (DbRetry.IsTransient(e) || e is Hangfire.BackgroundJobClientException)
        {
            // Hangfire wraps its storage's errors: a database away now. Best effort: the reaper enqueues it within seconds.
            log.LogWarning("run {RunId}: not enqueued ({Error}); the lease reaper will", runId, e.Message.Split('\n')[0]);
        }
    }

    /// <summary>Renews the lease every third of its duration. A lease found lost means another attempt owns the run:
    /// the child is stopped (its writes are fenced anyway). A database outage only skips beats.</summary>
    async Task Heartbeat(long runId, int attempt, Process child, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(lifecycle.Options.Heartbeat);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    if (await lifecycle.RenewAsync(runId, attempt, state.Name, stop))
                    {
                        HcInstruments.WorkerHeartbeats.Add(1, new KeyValuePair<string, object?>("worker", state.Name));
                        continue;
                    }
                    // Not renewed: the run ended (the child is exiting) or was taken over. Give the child a moment.
                    if (child.WaitForExit(TimeSpan.FromSeconds(3))) return;
                    log.LogWarning("run {RunId} attempt {Attempt}: lease lost; stopping the child", runId, attempt);
                    child.Kill(entireProcessTree: true);
                    return;
                }
                catch (Exception e) when (DbRetry.IsTransient(e))
                {
                    log.LogWarning("run {RunId} attempt {Attempt}: lease not renewed, database unavailable ({Error})", runId, attempt, e.Message.Split('\n')[0]);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    static string Signal(int exitCode) => exitCode switch
    {
        137 => " (SIGKILL: killed, e.g. out of memory)",
        134 => " (SIGABRT: native abort)",
        139 => " (SIGSEGV: native crash)",
        -1 => " (killed)",
        _ => "",
    };
}

/// <summary>What this worker is doing: its lease name, the run it trains, and that run's training metrics (relayed from
/// the child) for its Prometheus endpoint.</summary>
public sealed class WorkerState
{
    public WorkerState(string queue)
    {
        Name = $"{Environment.MachineName}:{Environment.ProcessId}:{queue}";
        HcInstruments.Meter.CreateObservableGauge("hc.worker.busy", () => new Measurement<int>(CurrentRun is null ? 0 : 1, new KeyValuePair<string, object?>("worker", Name)),
            description: "1 while the worker trains a run, else 0");
        // Counters appear in the scrape from the start (0), not only after their first event.
        foreach (var outcome in AttemptOutcome.All) HcInstruments.RunAttempts.Add(0, new KeyValuePair<string, object?>("outcome", outcome));
        HcInstruments.WorkerHeartbeats.Add(0, new KeyValuePair<string, object?>("worker", Name));
        HcInstruments.RunsRequeued.Add(0);
    }

    /// <summary>host:pid:queue; the lease owner of its runs (the pid lets an operator find the process).</summary>
    public string Name { get; }
    public long? CurrentRun { get; private set; }
    public TrainingGauges Training { get; } = new();

    public void Started(long runId, AttemptStart start)
    {
        CurrentRun = runId;
        Training.Start(runId, start);
    }

    public void Idle()
    {
        if (CurrentRun is { } id) Training.End(id);
        CurrentRun = null;
    }
}
