using System.Globalization;
using HcService.Contract.Config;
using HcService.Store.Runs;

namespace HcService.Store;

/// <summary>One setting of the service: its one name (an environment variable, and the same key in the API's
/// configuration: appsettings.json or --NAME=value), its default, what is allowed, and what it does. README.md's
/// settings table lists exactly these (<c>SettingsTests</c> checks it).</summary>
public sealed record SettingDefinition(string Name, string Default, string Allowed, string Description, string? FormerName = null);

/// <summary>
/// The service's settings, read once when a process starts (API, worker, training and evaluation processes, `hc up`)
/// and validated then: a bad value stops the process at start with the setting, the value and what is allowed (a
/// <see cref="ConfigException"/>). Names that earlier versions read (the API's <c>Hc:DataRoot</c> form) are still
/// accepted, with a warning, when the new name is not set.
/// </summary>
public sealed class HcSettings
{
    public static readonly SettingDefinition DataRootSetting = new("HC_DATA_ROOT", "./data/datasets", "a folder",
        "folder of named datasets (and eval/ for downstream tasks)", "Hc:DataRoot");
    public static readonly SettingDefinition CheckpointRootSetting = new("HC_CHECKPOINT_ROOT", "./.hc/checkpoints", "a folder",
        "checkpoint store shared by the API and the workers: one folder per run", "Hc:CheckpointRoot");
    public static readonly SettingDefinition LeaseSecondsSetting = new("HC_LEASE_SECONDS", "30", "a number in [1, 86400]",
        "how long a run's lease lasts without a heartbeat: a lost worker is noticed within this");
    public static readonly SettingDefinition MaxAttemptsSetting = new("HC_MAX_ATTEMPTS", "3", "an integer in [1, 1000000]",
        "attempts a run gets (per submission or retry) before a lost worker fails it");
    public static readonly SettingDefinition StopTimeoutSetting = new("HC_STOP_TIMEOUT_SECONDS", "60", "a number in [1, 86400]",
        "how long a stopping worker lets its training process checkpoint and hand the run back before killing it");
    public static readonly SettingDefinition MaxRunDaysSetting = new("HC_MAX_RUN_DAYS", "7", "a number in (0, 1000000]",
        "submissions whose estimated training time exceeds this are refused", "Hc:MaxRunDays");
    public static readonly SettingDefinition CpuMemorySetting = new("HC_CPU_MEMORY_GIB", "(the host's memory)", "a number in (0, 1048576]",
        "memory of a CPU worker, for the training-memory check at submission", "Hc:Devices:cpu:MemoryGiB");
    public static readonly SettingDefinition CudaMemorySetting = new("HC_CUDA_MEMORY_GIB", "80", "a number in (0, 1048576]",
        "memory of a CUDA device, for the training-memory check at submission", "Hc:Devices:cuda:MemoryGiB");
    public static readonly SettingDefinition CpuPeakSetting = new("HC_CPU_PEAK_GFLOPS", "2000", "a number in (0, 1e9]",
        "a CPU worker's peak for the run-duration estimate when no run of the preset has been measured", "Hc:Devices:cpu:PeakGflops");
    public static readonly SettingDefinition CudaPeakSetting = new("HC_CUDA_PEAK_TFLOPS", "989", "a number in (0, 1e6]",
        "a CUDA device's peak for the run-duration estimate when no run of the preset has been measured", "Hc:Devices:cuda:PeakTflops");
    public static readonly SettingDefinition MigrateSetting = new("HC_MIGRATE", "true", "true or false",
        "the API migrates the database at start", "Hc:Migrate");
    public static readonly SettingDefinition AuthEnabledSetting = new("HC_AUTH_ENABLED", "true", "true or false",
        "API keys required (false: every route is open, for a private laptop)", "Hc:Auth:Enabled");
    public static readonly SettingDefinition ReadsRequireKeySetting = new("HC_AUTH_READS_REQUIRE_KEY", "false", "true or false",
        "reads need a key with the read scope too", "Hc:Auth:ReadsRequireKey");
    public static readonly SettingDefinition UploadMaxMiBSetting = new("HC_UPLOAD_MAX_MIB", "512", "an integer in [1, 1024]",
        "largest dataset POST /api/datasets accepts (text or token file); larger bodies get 413");

    public static readonly IReadOnlyList<SettingDefinition> All =
    [
        DataRootSetting, CheckpointRootSetting, LeaseSecondsSetting, MaxAttemptsSetting, StopTimeoutSetting, MaxRunDaysSetting, CpuMemorySetting,
        CudaMemorySetting, CpuPeakSetting, CudaPeakSetting, MigrateSetting, AuthEnabledSetting, ReadsRequireKeySetting,
        UploadMaxMiBSetting,
    ];

    public required string DataRoot { get; init; }
    public required string CheckpointRoot { get; init; }
    public double LeaseSeconds { get; init; } = 30;
    public int MaxAttempts { get; init; } = 3;
    public double StopTimeoutSeconds { get; init; } = 60;
    public double MaxRunDays { get; init; } = 7;
    public double? CpuMemoryGiB { get; init; }
    public double CudaMemoryGiB { get; init; } = 80;
    public double CpuPeakGflops { get; init; } = 2000;
    public double CudaPeakTflops { get; init; } = 989;
    public bool Migrate { get; init; } = true;
    public bool AuthEnabled { get; init; } = true;
    public bool ReadsRequireKey { get; init; }
    public int UploadMaxMiB { get; init; } = 512;
    /// <summary>Former names found in use (each with its new name), for the process to warn about.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    public HcPaths Paths => new() { DataRoot = DataRoot, CheckpointRoot = CheckpointRoot };
    public LeaseOptions Leases => new() { Duration = TimeSpan.FromSeconds(LeaseSeconds), MaxAttempts = MaxAttempts };
    public TimeSpan StopTimeout => TimeSpan.FromSeconds(StopTimeoutSeconds);

    /// <summary>The stop timeout alone, leniently (a bad or missing value: the default): what every `hc` command needs to
    /// know how long to wait at Ctrl+C, including commands that use no other setting and must not fail on one.</summary>
    public static TimeSpan StopTimeoutOrDefault() =>
        Environment.GetEnvironmentVariable(StopTimeoutSetting.Name) is { } text
        && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && double.IsFinite(s) && s is >= 1 and <= 86_400
            ? TimeSpan.FromSeconds(s) : TimeSpan.FromSeconds(60);

    /// <summary>The settings of a process without a configuration system (the CLI, the worker's children): the environment.</summary>
    public static HcSettings FromEnvironment() => Load(Environment.GetEnvironmentVariable);

    /// <summary>Reads and validates every setting through <paramref name="lookup"/> (a configuration's indexer, or the
    /// environment); throws a <see cref="ConfigException"/> listing every bad one.</summary>
    public static HcSettings Load(Func<string, string?> lookup)
    {
        var errors = new List<ConfigError>();
        var warnings = new List<string>();
        string? Raw(SettingDefinition s)
        {
            if (lookup(s.Name) is { Length: > 0 } value) return value;
            if (s.FormerName is { } former && lookup(former) is { Length: > 0 } old)
            {
                warnings.Add($"{former} is a former name of {s.Name}: set {s.Name} instead");
                return old;
            }
            return null;
        }
        double Number(SettingDefinition s, double fallback, double min, double max, bool minExclusive = false)
        {
            if (Raw(s) is not { } text) return fallback;
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
                && (minExclusive ? v > min : v >= min) && v <= max) return v;
            errors.Add(new(s.Name, text, s.Allowed));
            return fallback;
        }
        int Integer(SettingDefinition s, int fallback, int min, int max)
        {
            if (Raw(s) is not { } text) return fallback;
            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max) return v;
            errors.Add(new(s.Name, text, s.Allowed));
            return fallback;
        }
        bool Flag(SettingDefinition s, bool fallback)
        {
            if (Raw(s) is not { } text) return fallback;
            if (bool.TryParse(text, out var v)) return v;
            errors.Add(new(s.Name, text, s.Allowed));
            return fallback;
        }
        string Folder(SettingDefinition s, params string[] fallback)
        {
            var text = Raw(s) ?? Path.Combine([Environment.CurrentDirectory, .. fallback]);
            try { return Path.GetFullPath(text); }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                errors.Add(new(s.Name, text, s.Allowed + ": " + e.Message));
                return text;
            }
        }

        var settings = new HcSettings
        {
            DataRoot = Folder(DataRootSetting, "data", "datasets"),
            CheckpointRoot = Folder(CheckpointRootSetting, ".hc", "checkpoints"),
            LeaseSeconds = Number(LeaseSecondsSetting, 30, 1, 86_400),
            MaxAttempts = Integer(MaxAttemptsSetting, 3, 1, 1_000_000),
            StopTimeoutSeconds = Number(StopTimeoutSetting, 60, 1, 86_400),
            MaxRunDays = Number(MaxRunDaysSetting, 7, 0, 1_000_000, minExclusive: true),
            CpuMemoryGiB = Raw(CpuMemorySetting) is null ? null : Number(CpuMemorySetting, 0, 0, 1_048_576, minExclusive: true),
            CudaMemoryGiB = Number(CudaMemorySetting, 80, 0, 1_048_576, minExclusive: true),
            CpuPeakGflops = Number(CpuPeakSetting, 2000, 0, 1e9, minExclusive: true),
            CudaPeakTflops = Number(CudaPeakSetting, 989, 0, 1e6, minExclusive: true),
            Migrate = Flag(MigrateSetting, true),
            AuthEnabled = Flag(AuthEnabledSetting, true),
            ReadsRequireKey = Flag(ReadsRequireKeySetting, false),
            UploadMaxMiB = Integer(UploadMaxMiBSetting, 512, 1, 1024),
            Warnings = warnings.Distinct().ToList(),
        };
        if (errors.Count > 0) throw new ConfigException(errors.DistinctBy(e => e.Field).ToList());
        return settings;
    }
}
