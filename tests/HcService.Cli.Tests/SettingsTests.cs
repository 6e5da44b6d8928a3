using HcService.Contract.Config;
using HcService.Store;

namespace HcService.Cli.Tests;

/// <summary>The service's settings: one name each, read and validated at start, documented in one README table.</summary>
public class SettingsTests
{
    static HcSettings Load(params (string Name, string Value)[] values)
    {
        var map = values.ToDictionary(v => v.Name, v => v.Value);
        return HcSettings.Load(name => map.GetValueOrDefault(name));
    }

    [Fact]
    public void DefaultsApplyWhenNothingIsSet()
    {
        var s = Load();
        Assert.Equal(Path.Combine(Environment.CurrentDirectory, "data", "datasets"), s.DataRoot);
        Assert.Equal(TimeSpan.FromSeconds(30), s.Leases.Duration);
        Assert.Equal(3, s.Leases.MaxAttempts);
        Assert.Equal(TimeSpan.FromSeconds(60), s.StopTimeout);
        Assert.True(s.AuthEnabled);
        Assert.False(s.ReadsRequireKey);
        Assert.Null(s.CpuMemoryGiB);
        Assert.Empty(s.Warnings);
    }

    [Fact]
    public void EveryBadSettingIsNamedWithItsValueAndWhatIsAllowed()
    {
        var e = Assert.Throws<ConfigException>(() => Load(("HC_LEASE_SECONDS", "0.5"), ("HC_MAX_ATTEMPTS", "2.5"), ("HC_AUTH_ENABLED", "yes"),
            ("HC_MAX_RUN_DAYS", "0"), ("HC_CPU_MEMORY_GIB", "NaN")));
        Assert.Equal(["HC_LEASE_SECONDS", "HC_MAX_ATTEMPTS", "HC_MAX_RUN_DAYS", "HC_CPU_MEMORY_GIB", "HC_AUTH_ENABLED"], e.Errors.Select(x => x.Field));
        Assert.Contains("HC_LEASE_SECONDS = '0.5': must be a number in [1, 86400]", e.Message);
        Assert.Contains("HC_AUTH_ENABLED = 'yes': must be true or false", e.Message);
    }

    [Fact]
    public void AFormerNameStillWorksWithAWarningAndTheNewNameWins()
    {
        var old = Load(("Hc:DataRoot", "/srv/data"), ("Hc:Auth:Enabled", "false"));
        Assert.Equal("/srv/data", old.DataRoot);
        Assert.False(old.AuthEnabled);
        Assert.Contains("Hc:DataRoot is a former name of HC_DATA_ROOT: set HC_DATA_ROOT instead", old.Warnings);
        var both = Load(("Hc:DataRoot", "/srv/old"), ("HC_DATA_ROOT", "/srv/new"));
        Assert.Equal("/srv/new", both.DataRoot);
        Assert.Empty(both.Warnings);
    }

    [Fact]
    public void TheReadmeTableListsEverySettingWithItsDefaultAndWhatIsAllowed()
    {
        var readme = File.ReadAllLines(Path.Combine(RepoPaths.Root, "README.md"));
        foreach (var s in HcSettings.All)
        {
            var row = readme.FirstOrDefault(l => l.StartsWith($"| `{s.Name}` |", StringComparison.Ordinal));
            Assert.True(row is not null, $"README.md has no settings row for {s.Name}");
            var cells = row.Split('|').Select(c => c.Trim()).ToArray();
            Assert.Equal($"`{s.Default}`", cells[2]);
            Assert.Equal(s.Allowed, cells[3]);
        }
    }

    [Fact]
    public async Task ACommandThatUsesNoSettingIsNotStoppedByOne()
    {
        var r = await HcProcess.RunAsync(TimeSpan.FromMinutes(2), new Dictionary<string, string?> { ["HC_LEASE_SECONDS"] = "soon", ["HC_STOP_TIMEOUT_SECONDS"] = "x" },
            "params", "--preset", "tiny");
        Assert.True(r.ExitCode == 0, r.Output);
    }

    [Fact]
    public async Task ABadSettingStopsACommandAtStartNamingIt()
    {
        var r = await HcProcess.RunAsync(TimeSpan.FromMinutes(2), new Dictionary<string, string?> { ["HC_LEASE_SECONDS"] = "soon" },
            "worker", "--connection", "Host=127.0.0.1;Port=1;Username=x;Database=x");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("HC_LEASE_SECONDS = 'soon': must be a number in [1, 86400]", r.Stderr);
    }
}
