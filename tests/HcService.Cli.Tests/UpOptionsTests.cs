namespace HcService.Cli.Tests;

/// <summary>`hc up`'s options that need no server to check.</summary>
public class UpOptionsTests
{
    [Fact]
    public void KeepGoesWithTheDemoOnly()
    {
        var r = HcProcess.Run("up", "--keep", "--home", RepoPaths.TempDir("up-keep"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--keep goes with --demo", r.Stderr);
        Assert.DoesNotContain("starting PostgreSQL", r.Stdout);   // refused before anything started
    }
}
