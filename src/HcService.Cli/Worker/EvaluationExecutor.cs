using Microsoft.Extensions.Logging;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using HcService.Cli.Processes;

namespace HcService.Cli.Worker;

/// <summary>
/// The worker's side of an evaluation job: start it (queued -> running), score the checkpoint in a child process
/// (`hc run-eval`, which loads libtorch; the worker never does), and fail the job with the exit code and stderr tail if
/// the child dies without recording an end. A job left running by a worker whose Hangfire server has stopped beating
/// (lost) is taken again when Hangfire dispatches it again (after its invisibility timeout).
/// </summary>
public sealed class EvaluationExecutor(EvaluationJobs evaluations, string connectionString, HcPaths paths, WorkerState state, ILogger log) : IEvaluationExecutor
{
    public async Task ExecuteAsync(long evaluationId, CancellationToken shutdown)
    {
        if (!await evaluations.StartAsync(evaluationId, state.Name, shutdown)) return;
        string reason;
        try
        {
            using var child = ChildRunner.Start(["run-eval", "--eval-id", evaluationId.ToString(System.Globalization.CultureInfo.InvariantCulture)],
                connectionString, paths, $"eval {evaluationId}", log);
            try { await child.Process.WaitForExitAsync(shutdown); }
            catch (OperationCanceledException)
            {
                // The worker is stopping: the job is taken again once this worker's Hangfire server is gone.
                child.Process.Kill(entireProcessTree: true);
                throw;
            }
            if (child.Process.ExitCode == 0) return;
            reason = $"evaluation process exited with code {child.Process.ExitCode}; stderr tail: {child.StderrTail()}";
        }
        catch (Exception e) when (e is not OperationCanceledException) { reason = $"worker error: {e.GetType().Name}: {e.Message}"; }
        await evaluations.FailAsync(evaluationId, reason, CancellationToken.None);
    }
}
