using Hangfire;
using Hangfire.States;
using Npgsql;

using HcService.Store.Jobs;

namespace HcService.Store.Runs;

/// <summary>
/// Finds runs whose worker was lost (an expired lease) and moves them on: a requeued run gets a new Hangfire job on its
/// device queue, so any worker resumes it from its latest verified checkpoint. Every API and worker process runs one;
/// the SQL lets exactly one of them take each run. A database that is away is waited out, not fatal.
/// </summary>
public sealed class LeaseReaper(RunLifecycle lifecycle, IBackgroundJobClient jobs, Action<string> log)
{
    public async Task RunAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(lifecycle.Options.ReapInterval);
        do
        {
            try { await ReapOnceAsync(stop); }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
            {
                log($"lease reaper: database unavailable ({e.Message}); trying again");
            }
        } while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false));
    }

    public async Task<IReadOnlyList<RunPlacement>> ReapOnceAsync(CancellationToken ct)
    {
        foreach (var run in await lifecycle.UnenqueuedAsync(ct))
        {
            log($"run {run.RunId}: queued without a job; enqueueing it");
            await RunQueue.EnqueueAsync(lifecycle, jobs, run.RunId, run.Queue, ct);
        }
        var reaped = await lifecycle.ReapAsync(ct);
        foreach (var run in reaped)
        {
            log($"run {run.RunId}: its worker's lease expired -> {run.Status}");
            if (run.Status != RunStatus.Queued) continue;
            // A failure here leaves the run queued without a job: the next tick's UnenqueuedAsync picks it up.
            await RunQueue.EnqueueAsync(lifecycle, jobs, run.RunId, run.Queue, ct);
            HcInstruments.RunsRequeued.Add(1);
        }
        return reaped;
    }
}

/// <summary>Puts a queued run on its device's Hangfire queue and remembers the job id on the run.</summary>
public static class RunQueue
{
    public static async Task<string> EnqueueAsync(RunLifecycle lifecycle, IBackgroundJobClient jobs, long runId, string queue, CancellationToken ct)
    {
        var jobId = jobs.Create<TrainingJob>(j => j.Execute(runId, JobCancellationToken.Null), new EnqueuedState(queue));
        await lifecycle.RecordJobAsync(runId, jobId, ct);
        return jobId;
    }
}

/// <summary>The reaper as a hosted service of the API and of each worker.</summary>
public sealed class LeaseReaperService(LeaseReaper reaper) : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try { await reaper.RunAsync(stoppingToken); }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }
}
