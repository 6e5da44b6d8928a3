using System.Diagnostics;
using HcService.Store;
using HcService.Store.Jobs;
using Microsoft.EntityFrameworkCore;

namespace HcService.Cli.Service;

/// <summary>
/// The worker's side of a training job: claim the run (queued -> running, attempt + 1), run the attempt in a child
/// process (`hc run-job`), and when the child dies without recording an end (native crash, OOM kill, SIGKILL) fail the
/// run with the exit code and the tail of its stderr. A crash never takes the worker down; it goes on to the next job.
/// </summary>
public sealed class RunExecutor(string connectionString, HcPaths paths) : IRunExecutor
{
    const int StderrTailChars = 4000;

    public async Task ExecuteAsync(long runId, CancellationToken shutdown)
    {
        await using var db = new HcDbContext(HcDbContext.Options(connectionString));
        var now = DateTimeOffset.UtcNow;
        var claimed = await db.Runs.Where(r => r.Id == runId && r.Status == RunStatus.Queued).ExecuteUpdateAsync(s => s
            .SetProperty(r => r.Status, RunStatus.Running).SetProperty(r => r.Attempt, r => r.Attempt + 1)
            .SetProperty(r => r.StartedAt, r => r.StartedAt ?? now).SetProperty(r => r.UpdatedAt, now), shutdown);
        if (claimed == 0) return;   // cancelled while queued, or another worker has it: safe to run twice
        var attempt = await db.Runs.Where(r => r.Id == runId).Select(r => r.Attempt).FirstAsync(shutdown);

        try
        {
            await RunChild(db, runId, attempt, shutdown);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The attempt could not run (no child, a database error...): end it as failed instead of leaving it running.
            var end = DateTimeOffset.UtcNow;
            await db.Runs.Where(r => r.Id == runId && r.Attempt == attempt && (r.Status == RunStatus.Running || r.Status == RunStatus.Cancelling))
                .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, RunStatus.Failed).SetProperty(r => r.FailureReason, $"worker error: {e.GetType().Name}: {e.Message}")
                    .SetProperty(r => r.FinishedAt, end).SetProperty(r => r.UpdatedAt, end), CancellationToken.None);
            throw;
        }
    }

    async Task RunChild(HcDbContext db, long runId, int attempt, CancellationToken shutdown)
    {
        var psi = ChildStartInfo();
        psi.ArgumentList.Add("run-job");
        psi.ArgumentList.Add("--run-id");
        psi.ArgumentList.Add(runId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        psi.ArgumentList.Add("--attempt");
        psi.ArgumentList.Add(attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));
        psi.Environment["ConnectionStrings__hc"] = connectionString;
        psi.Environment["HC_DATA_ROOT"] = paths.DataRoot;
        psi.Environment["HC_CHECKPOINT_ROOT"] = paths.CheckpointRoot;
        if (!psi.Environment.ContainsKey("GLIBC_TUNABLES"))
            psi.Environment["GLIBC_TUNABLES"] = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296";
        psi.RedirectStandardError = true;
        psi.RedirectStandardOutput = true;

        var tail = new System.Text.StringBuilder();
        using var child = new Process { StartInfo = psi };
        child.ErrorDataReceived += (_, e) => { if (e.Data is null) return; lock (tail) { tail.AppendLine(e.Data); if (tail.Length > 2 * StderrTailChars) tail.Remove(0, tail.Length - StderrTailChars); } };
        child.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.WriteLine($"[run {runId}] {e.Data}"); };
        child.Start();
        child.BeginErrorReadLine();
        child.BeginOutputReadLine();
        Console.WriteLine($"run {runId} attempt {attempt}: started child process {child.Id}");
        try { await child.WaitForExitAsync(shutdown); }
        catch (OperationCanceledException)
        {
            // The worker is stopping: stop the child too (its run is found by lease expiry and requeued).
            child.Kill(entireProcessTree: true);
            throw;
        }

        string stderrTail;
        lock (tail) stderrTail = tail.Length > StderrTailChars ? tail.ToString(tail.Length - StderrTailChars, StderrTailChars) : tail.ToString();
        var reason = $"training process exited with code {child.ExitCode}{Signal(child.ExitCode)} without recording an end; stderr tail: {stderrTail.Trim()}";
        var end = DateTimeOffset.UtcNow;
        var failed = await db.Runs.Where(r => r.Id == runId && r.Attempt == attempt && (r.Status == RunStatus.Running || r.Status == RunStatus.Cancelling))
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.Status, RunStatus.Failed).SetProperty(r => r.FailureReason, reason)
                .SetProperty(r => r.FinishedAt, end).SetProperty(r => r.UpdatedAt, end), CancellationToken.None);
        Console.WriteLine($"run {runId} attempt {attempt}: child exited with {child.ExitCode}{(failed > 0 ? " -> failed" : "")}");
    }

    static string Signal(int exitCode) => exitCode switch
    {
        137 => " (SIGKILL: killed, e.g. out of memory)",
        134 => " (SIGABRT: native abort)",
        139 => " (SIGSEGV: native crash)",
        -1 => " (killed)",
        _ => "",
    };

    /// <summary>How to start this same `hc` program again: the apphost, or `dotnet hc.dll`.</summary>
    internal static ProcessStartInfo ChildStartInfo()
    {
        var self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(RunExecutor).Assembly.Location);
        return psi;
    }
}
