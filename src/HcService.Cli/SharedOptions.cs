using System.CommandLine;

namespace HcService.Cli;

/// <summary>--data-root: the flag, else the HC_DATA_ROOT setting (default ./data/datasets).</summary>
static class DataRootOption
{
    public static Option<string?> Create() => new("--data-root") { Description = "Folder of named datasets (default: $HC_DATA_ROOT, else ./data/datasets)" };

    public static string Resolve(string? flag) =>
        flag ?? HcService.Store.HcSettings.FromEnvironment().DataRoot;
}

/// <summary>--checkpoint-root: the flag, else the HC_CHECKPOINT_ROOT setting (default ./.hc/checkpoints).</summary>
static class CheckpointRootOption
{
    public static Option<string?> Create() => new("--checkpoint-root") { Description = "Checkpoint store shared by workers and the API (default: $HC_CHECKPOINT_ROOT, else ./.hc/checkpoints)" };

    public static string Resolve(string? flag) => Path.GetFullPath(flag ?? HcService.Store.HcSettings.FromEnvironment().CheckpointRoot);
}
