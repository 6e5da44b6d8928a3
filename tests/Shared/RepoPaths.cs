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

    /// <summary>A fresh folder for one test, under one folder per test process that is deleted when the process exits.</summary>
    public static string TempDir(string prefix)
    {
        var dir = Path.Combine(SessionRoot.Value, $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    static readonly Lazy<string> SessionRoot = new(() =>
    {
        var root = Path.Combine(Path.GetTempPath(), $"hc-tests-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return root;
    });
}
