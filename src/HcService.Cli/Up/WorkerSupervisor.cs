using System.Diagnostics;
using HcService.Cli.Processes;

namespace HcService.Cli.Up;

/// <summary>
/// What systemd or compose's restart policy does for a worker in production, for `hc up` on a laptop: starts the worker
/// process, restarts it with a growing delay (1 s doubling to 30 s, back to 1 s after a minute up) whenever it exits
/// unasked, and says so; stops it gracefully (SIGTERM: the run in progress is checkpointed and handed back).
/// </summary>
sealed class WorkerSupervisor(Func<Process> start, Action<string> log) : IAsyncDisposable
{
    static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30), Stable = TimeSpan.FromMinutes(1);
    readonly CancellationTokenSource stopping = new();
    readonly object gate = new();
    Process current = null!;
    Task loop = Task.CompletedTask;

    /// <summary>The worker process running now.</summary>
    public Process Current { get { lock (gate) return current; } }

    public void Start()
    {
        current = start();
        loop = Supervise();
    }

    async Task Supervise()
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (true)
        {
            var process = Current;
            var up = Stopwatch.StartNew();
            try { await process.WaitForExitAsync(stopping.Token); }
            catch (OperationCanceledException) { return; }
            if (up.Elapsed > Stable) backoff = TimeSpan.FromSeconds(1);
            log($"worker process {process.Id} exited with code {process.ExitCode}; restarting it in {backoff.TotalSeconds:0} s");
            try { await Task.Delay(backoff, stopping.Token); }
            catch (OperationCanceledException) { return; }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            lock (gate)
            {
                if (stopping.IsCancellationRequested) return;
                current = start();
            }
            log($"worker restarted: process {Current.Id}");
        }
    }

    /// <summary>No more restarts; SIGTERM to the worker, SIGKILL after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        lock (gate) stopping.Cancel();
        await loop;
        await ChildRunner.StopGracefully(Current, grace);
    }

    public ValueTask DisposeAsync()
    {
        stopping.Dispose();
        return ValueTask.CompletedTask;
    }
}
