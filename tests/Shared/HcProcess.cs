using System.Diagnostics;

namespace HcService.Tests.Shared;

/// <summary>Runs the built `hc` CLI as a child process, as a user would.</summary>
public static class HcProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string Output => Stdout + Stderr;
    }

    public static Result Run(params string[] args) => RunAsync(args).GetAwaiter().GetResult();

    public static Task<Result> RunAsync(params string[] args) => RunAsync(TimeSpan.FromMinutes(5), args);

    public static Task<Result> RunAsync(TimeSpan timeout, params string[] args) => RunAsync(timeout, new Dictionary<string, string?>(), args);

    /// <param name="environment">Variables set (a null value removes one) in the child's environment.</param>
    public static async Task<Result> RunAsync(TimeSpan timeout, IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "hc.dll");
        Assert.True(File.Exists(dll), $"hc.dll not found at {dll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (name, value) in environment)
            if (value is null) psi.Environment.Remove(name); else psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try { await p.WaitForExitAsync().WaitAsync(timeout); }
        catch (TimeoutException) { p.Kill(entireProcessTree: true); Assert.Fail($"hc {string.Join(' ', args)} timed out"); }
        return new(p.ExitCode, await stdout, await stderr);
    }
}
