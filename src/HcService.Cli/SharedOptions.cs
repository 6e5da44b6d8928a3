using System.CommandLine;

namespace HcService.Cli;

/// <summary>--data-root: the flag, else $HC_DATA_ROOT, else ./data/datasets.</summary>
static class DataRootOption
{
    public static Option<string?> Create() => new("--data-root") { Description = "Folder of named datasets (default: $HC_DATA_ROOT, else ./data/datasets)" };

    public static string Resolve(string? flag) =>
        flag ?? Environment.GetEnvironmentVariable("HC_DATA_ROOT") ?? Path.Combine(Environment.CurrentDirectory, "data", "datasets");
}

/// <summary>--checkpoint-root: the flag, else $HC_CHECKPOINT_ROOT, else ./.hc/checkpoints.</summary>
static class CheckpointRootOption
{
    public static Option<string?> Create() => new("--checkpoint-root") { Description = "Checkpoint store shared by workers and the API (default: $HC_CHECKPOINT_ROOT, else ./.hc/checkpoints)" };

    public static string Resolve(string? flag) => Path.GetFullPath(flag ?? Environment.GetEnvironmentVariable("HC_CHECKPOINT_ROOT") ?? Path.Combine(Environment.CurrentDirectory, ".hc", "checkpoints"));
}
