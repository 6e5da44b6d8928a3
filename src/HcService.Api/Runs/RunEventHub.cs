using System.Collections.Concurrent;
using HcService.Store;
using HcService.Store.Runs;
using Npgsql;

namespace HcService.Api.Runs;

/// <summary>
/// Wakes the event streams of a run when something about it commits. One LISTEN connection per API process, on the
/// channels the database notifies on commit: <c>hc_run_events</c> (a status transition; the trigger on <c>hc.runs</c>)
/// and <c>hc_run_metrics</c> (a batch of metric points). A notification only says "look again": streams read what they
/// send from the tables, so a missed notification costs latency (<see cref="FallbackWake"/>), never an event. While the
/// listening connection is down (a database restart) it reconnects with backoff and, once back, wakes every stream.
/// </summary>
public sealed class RunEventHub(NpgsqlDataSource db, ILogger<RunEventHub> log) : BackgroundService
{
    /// <summary>How long a stream waits without a notification before it looks again anyway.</summary>
    public static readonly TimeSpan FallbackWake = TimeSpan.FromSeconds(5);

    readonly ConcurrentDictionary<long, TaskCompletionSource> armed = new();

    /// <summary>
    /// The signal for the next commit about <paramref name="runId"/>. Take it before reading, then wait on it: a commit
    /// between the read and the wait has already completed it, so nothing slips between the two.
    /// </summary>
    public Task Arm(long runId) =>
        armed.GetOrAdd(runId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    void Wake(long runId)
    {
        if (armed.TryRemove(runId, out var signal)) signal.TrySetResult();
    }

    void WakeAll()
    {
        foreach (var runId in armed.Keys) Wake(runId);
    }

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        var down = false;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await using var conn = await db.OpenConnectionAsync(stop);
                conn.Notification += (_, e) =>
                {
                    if (long.TryParse(e.Payload, out var runId)) Wake(runId);
                };
                await using (var listen = new NpgsqlCommand("LISTEN hc_run_events; LISTEN hc_run_metrics", conn))
                    await listen.ExecuteNonQueryAsync(stop);
                if (down) log.LogInformation("listening for run events again");
                down = false;
                backoff = TimeSpan.FromMilliseconds(250);
                WakeAll();   // whatever committed while nobody listened
                while (!stop.IsCancellationRequested) await conn.WaitAsync(stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { return; }
            catch (Exception e) when (DbRetry.IsTransient(e) || e is NpgsqlException or InvalidOperationException)
            {
                if (!down) log.LogWarning("not listening for run events ({Error}); streams look again every {Seconds} s until the database is back",
                    e.Message.Split('\n')[0], FallbackWake.TotalSeconds);
                down = true;
                WakeAll();
                try { await Task.Delay(backoff, stop); }
                catch (OperationCanceledException) { return; }
                backoff = TimeSpan.FromSeconds(Math.Min(backoff.TotalSeconds * 2, 5));
            }
        }
    }
}
