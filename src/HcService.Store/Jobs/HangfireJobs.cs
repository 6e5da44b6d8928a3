using HcService.Store.Runs;
namespace HcService.Store.Jobs;

/// <summary>The Hangfire job of a training run. The type lives in this shared assembly so that the API can enqueue it
/// and the worker can execute it; the worker registers the implementation behind <see cref="IRunExecutor"/>.</summary>
public sealed class TrainingJob(IRunExecutor executor)
{
    /// <summary>Hangfire calls this with the run id; safe to run twice (the claim only takes a queued run). No global lock:
    /// the run's lease is the concurrency control, so workers train different runs in parallel. An exception (the
    /// database away at claim time) is retried; a retry of a job whose run is no longer queued does nothing.</summary>
    [Hangfire.AutomaticRetry(Attempts = 5, DelaysInSeconds = [2, 5, 10, 30, 60], OnAttemptsExceeded = Hangfire.AttemptsExceededAction.Fail)]
    public Task Execute(long runId, Hangfire.IJobCancellationToken cancellationToken) => executor.ExecuteAsync(runId, cancellationToken.ShutdownToken);
}

public interface IRunExecutor
{
    Task ExecuteAsync(long runId, CancellationToken shutdown);
}

/// <summary>The Hangfire job of an on-demand evaluation (a stored checkpoint scored on downstream tasks).</summary>
public sealed class EvaluationJobRunner(IEvaluationExecutor executor)
{
    [Hangfire.AutomaticRetry(Attempts = 3, DelaysInSeconds = [5, 30, 60], OnAttemptsExceeded = Hangfire.AttemptsExceededAction.Fail)]
    public Task Execute(long evaluationId, Hangfire.IJobCancellationToken cancellationToken) => executor.ExecuteAsync(evaluationId, cancellationToken.ShutdownToken);
}

public interface IEvaluationExecutor
{
    Task ExecuteAsync(long evaluationId, CancellationToken shutdown);
}
