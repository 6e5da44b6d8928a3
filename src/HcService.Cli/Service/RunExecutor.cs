using System.Diagnostics;
using System.Runtime.InteropServices;
using HcService.Store;
using HcService.Store.Jobs;

namespace HcService.Cli.Service;

/// <summary>
/// The worker's side of a training job (DESIGN.md section 5): claim the run under a lease (queued -> running, attempt + 1),
/// run the attempt in a child process (`hc run-job`), and renew the lease by heartbeat while it trains. When the lease
/// is lost (the run was reaped and requeued elsewhere) the child is killed; when the worker is stopping the child is
/// asked to checkpoint and hand the run back; when the child dies without recording an end (native crash, OOM kill,
/// SIGKILL) the run fails with the exit code and the tail of its stderr. A crash never takes the worker down.
/// </summary>
public sealed class RunExecutor(string connectionString, HcPaths paths, RunLeases leases, WorkerState state) : IRunExecutor
{
    static readonly TimeSpan WriteBudget = TimeSpan.FromMinutes(5);
    /// <summary>How long a stopping worker lets its child checkpoint (below the Hangfire server's shutdown timeout).</summary>
    static readonly TimeSpan GracefulStop = TimeSpan.FromSeconds(10);

    public async Task ExecuteAsync(long runId, CancellationToken shutdown)
    {
        if (await leases.ClaimAsync(runId, state.Name, shutdown) is not { } attempt) return;   // not queued: a duplicate dispatch
        state.Claimed(runId);
        try
        {
            await RunChild(runId, attempt, shutdown);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The attempt could not run (no child...): end it as failed instead of leaving it to the lease.
            await DbRetry.RunAsync(ct => leases.FinishAsync(runId, attempt, RunStatus.Failed, $"worker error: {e.GetType().Name}: {e.Message}", ct),
                WriteBudget, Console.Error.WriteLine, CancellationToken.None);
            throw;
        }
        finally { state.Idle(); }
    }

    async Task RunChild(long runId, int attempt, CancellationToken shutdown)
    {
        using var runner = ChildRunner.Start(["run-job", "--run-id", runId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--attempt", attempt.ToString(System.Globalization.CultureInfo.InvariantCulture)], connectionString, paths, $"run {runId}");
        var child = runner.Process;
        Console.WriteLine($"run {runId} attempt {attempt}: started child process {child.Id} (lease holder {state.Name})");

        using var stopHeartbeat = new CancellationTokenSource();
        var heartbeat = Heartbeat(runId, attempt, child, stopHeartbeat.Token);
        try { await child.WaitForExitAsync(shutdown); }
        catch (OperationCanceledException)
        {
            // The worker is stopping: let the child checkpoint and hand the run back (it is requeued at once).
            Console.WriteLine($"run {runId} attempt {attempt}: worker stopping; asking the child to checkpoint");
            _ = kill(child.Id, SIGTERM);
            using var grace = new CancellationTokenSource(GracefulStop);
            try { await child.WaitForExitAsync(grace.Token); }
            catch (OperationCanceledException) { child.Kill(entireProcessTree: true); }
            await stopHeartbeat.CancelAsync();
            try { await leases.ReleaseAsync(runId, attempt, CancellationToken.None); }
            catch (Exception e) when (DbRetry.IsTransient(e)) { /* the lease then simply expires */ }
            throw;
        }
        await stopHeartbeat.CancelAsync();
        await heartbeat;

        if (child.ExitCode == RunJobCommand.ExitRequeue)
        {
            Console.WriteLine($"run {runId} attempt {attempt}: handed back for requeue");
            return;
        }
        var reason = $"training process exited with code {child.ExitCode}{Signal(child.ExitCode)} without recording an end; stderr tail: {runner.StderrTail()}";
        // Fenced: a no-op when the child recorded its end (or a newer attempt has the run).
        var failed = await DbRetry.RunAsync(ct => leases.FinishAsync(runId, attempt, RunStatus.Failed, reason, ct), WriteBudget, Console.Error.WriteLine, CancellationToken.None);
        Console.WriteLine($"run {runId} attempt {attempt}: child exited with {child.ExitCode}{(failed ? " -> failed" : "")}");
    }

    /// <summary>Renews the lease every third of its duration. A lease found lost means another attempt owns the run:
    /// the child is stopped (its writes are fenced anyway). A database outage only skips beats.</summary>
    async Task Heartbeat(long runId, int attempt, Process child, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(leases.Options.Heartbeat);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    if (await leases.RenewAsync(runId, attempt, state.Name, stop)) { state.Beat(); continue; }
                    // Not renewed: the run ended (the child is exiting) or was taken over. Give the child a moment.
                    if (child.WaitForExit(TimeSpan.FromSeconds(3))) return;
                    Console.WriteLine($"run {runId} attempt {attempt}: lease lost; stopping the child");
                    child.Kill(entireProcessTree: true);
                    return;
                }
                catch (Exception e) when (DbRetry.IsTransient(e))
                {
                    Console.Error.WriteLine($"run {runId} attempt {attempt}: lease not renewed, database unavailable ({e.Message.Split('\n')[0]})");
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    const int SIGTERM = 15;
    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int sig);

    static string Signal(int exitCode) => exitCode switch
    {
        137 => " (SIGKILL: killed, e.g. out of memory)",
        134 => " (SIGABRT: native abort)",
        139 => " (SIGSEGV: native crash)",
        -1 => " (killed)",
        _ => "",
    };
}

/// <summary>What this worker is doing, for its lease name, heartbeats and metrics.</summary>
public sealed class WorkerState(string queue)
{
    /// <summary>host:pid:queue; the lease owner of its runs (the pid lets an operator find the process).</summary>
    public string Name { get; } = $"{Environment.MachineName}:{Environment.ProcessId}:{queue}";
    public string Queue => queue;
    public long? CurrentRun { get; private set; }
    public long Heartbeats => Interlocked.Read(ref heartbeats);
    long heartbeats;

    public void Claimed(long runId) => CurrentRun = runId;
    public void Idle() => CurrentRun = null;
    public void Beat() => Interlocked.Increment(ref heartbeats);
}
