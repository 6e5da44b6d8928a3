using System.Diagnostics;

namespace HcService.Cli.Tests;

/// <summary>Runs the built `hc` CLI as a child process, as a user would.</summary>
static class HcProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "hc.dll");
        Assert.True(File.Exists(dll), $"hc.dll not found at {dll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(entireProcessTree: true); Assert.Fail("hc timed out"); }
        return new(p.ExitCode, stdout.Result, stderr.Result);
    }
}
