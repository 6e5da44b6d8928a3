namespace HcService.Store.Jobs;

/// <summary>Settings shared by the API (enqueue) and the worker (execute).</summary>
public sealed class HcPaths
{
    /// <summary>Folder of named datasets.</summary>
    public required string DataRoot { get; init; }
    /// <summary>Checkpoint store: one folder per run, shared by workers and the API.</summary>
    public required string CheckpointRoot { get; init; }

    public string RunFolder(long runId) => Path.Combine(CheckpointRoot, $"run-{runId}");
}

/// <summary>The Hangfire job of a training run. The type lives in this shared assembly so that the API can enqueue it
/// and the worker can execute it; the worker registers the implementation behind <see cref="IRunExecutor"/>.</summary>
public sealed class TrainingJob(IRunExecutor executor)
{
    /// <summary>Hangfire calls this with the run id; safe to run twice (the executor reads the run's state first).</summary>
    [Hangfire.AutomaticRetry(Attempts = 0)]
    [Hangfire.DisableConcurrentExecution(timeoutInSeconds: 10)]
    public Task Execute(long runId, Hangfire.IJobCancellationToken cancellationToken) => executor.ExecuteAsync(runId, cancellationToken.ShutdownToken);
}

public interface IRunExecutor
{
    Task ExecuteAsync(long runId, CancellationToken shutdown);
}
