namespace HcService.Tests.Shared;

public static class RepoPaths
{
    /// <summary>The repository root: the nearest folder above the test binaries that holds HcService.sln.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The shipped datasets (data/datasets).</summary>
    public static string DataRoot => Path.Combine(Root, "data", "datasets");

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "HcService.sln"))) return dir.FullName;
        throw new InvalidOperationException($"HcService.sln not found above {AppContext.BaseDirectory}");
    }

    public static string TempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"hc-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }
}
