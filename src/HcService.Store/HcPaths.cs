using HcService.Store.Runs;
namespace HcService.Store;

/// <summary>Where the service keeps its files: the data root and the checkpoint store (one folder per run).</summary>
public sealed class HcPaths
{
    /// <summary>Folder of named datasets.</summary>
    public required string DataRoot { get; init; }
    /// <summary>Checkpoint store: one folder per run, shared by workers and the API.</summary>
    public required string CheckpointRoot { get; init; }

    public string RunFolder(long runId) => Path.Combine(CheckpointRoot, $"run-{runId}");
}
