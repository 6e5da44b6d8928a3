using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace HcService.Tests.Shared;

/// <summary>
/// A long-running `hc` process (hc up, hc worker, hc watch) as a user runs it in a terminal: its output is collected as it
/// comes, a test waits for a line matching a pattern (woken by the line itself, not by polling), sends it signals and
/// waits for its exit code.
/// </summary>
public sealed class HcLiveProcess : IAsyncDisposable
{
    readonly Process process;
    readonly StringBuilder output = new();
    readonly List<(Regex Pattern, TaskCompletionSource<Match> Found)> waiters = [];
    readonly TaskCompletionSource outputClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    int open = 2;

    HcLiveProcess(Process process) => this.process = process;

    static readonly Lazy<bool> EnvResetsSignals = new(() =>
    {
        try
        {
            using var probe = Process.Start(new ProcessStartInfo("env", ["--default-signal=INT", "true"]) { RedirectStandardError = true, UseShellExecute = false })!;
            probe.WaitForExit();
            return probe.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    });

    public int Id => process.Id;
    public string Output { get { lock (output) return output.ToString(); } }

    public static HcLiveProcess Start(params string[] args)
    {
        // As from a terminal: SIGINT at its default disposition even when the test runner was started in the background
        // (a non-interactive shell's `cmd &` and nohup make children ignore it, and .NET then never sees a Ctrl+C).
        // (GNU env >= 8.31; elsewhere the process starts as the runner's children do.)
        var psi = new ProcessStartInfo(EnvResetsSignals.Value ? "env" : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in EnvResetsSignals.Value ? ["--default-signal=INT", "dotnet", Path.Combine(AppContext.BaseDirectory, "hc.dll")] : new[] { Path.Combine(AppContext.BaseDirectory, "hc.dll") })
            psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Launch(psi, terminal: false);
    }

    static HcLiveProcess Launch(ProcessStartInfo psi, bool terminal)
    {
        var live = new HcLiveProcess(new Process { StartInfo = psi }) { terminal = terminal };
        live.process.OutputDataReceived += (_, e) => live.Line(e.Data);
        live.process.ErrorDataReceived += (_, e) => live.Line(e.Data);
        live.process.Start();
        live.process.BeginOutputReadLine();
        live.process.BeginErrorReadLine();
        return live;
    }

    /// <summary>The variables that make Spectre.Console treat a terminal as a CI log (no live display).</summary>
    static readonly string[] CiVariables = ["APPVEYOR", "TF_BUILD", "BITBUCKET_REPO_OWNER", "BITBUCKET_REPO_SLUG", "BITBUCKET_COMMIT", "BITRISE_BUILD_URL",
        "GITHUB_ACTIONS", "CI_SERVER", "GO_SERVER_URL", "JENKINS_URL", "TEAMCITY_VERSION", "TRAVIS"];

    bool terminal;

    /// <summary>`hc` under a pseudo-terminal (util-linux `script`), as a person at a terminal runs it: stdout is a terminal,
    /// so commands draw live progress. Its output lines are what the terminal received with the ANSI sequences removed and
    /// split at carriage returns (each redraw of a live display is a line).</summary>
    public static HcLiveProcess StartInTerminal(params string[] args)
    {
        static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        var command = string.Join(' ', new[] { "dotnet", Path.Combine(AppContext.BaseDirectory, "hc.dll") }.Concat(args).Select(Quote));
        var psi = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "-qfec", command, "/dev/null" }) psi.ArgumentList.Add(a);
        foreach (var v in CiVariables) psi.Environment.Remove(v);
        psi.Environment["TERM"] = "xterm-256color";
        return Launch(psi, terminal: true);
    }

    static readonly Regex Ansi = new(@"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[=>]|[()][0-9A-Za-z])");

    void Line(string? line)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref open) == 0) outputClosed.TrySetResult();
            return;
        }
        if (terminal)
        {
            foreach (var part in Ansi.Replace(line, "").Split('\r'))
                if (part.Trim().Length > 0) Add(part.TrimEnd());
            return;
        }
        Add(line);
    }

    void Add(string line)
    {
        lock (output)
        {
            output.AppendLine(line);
            foreach (var (pattern, found) in waiters)
                if (!found.Task.IsCompleted && pattern.Match(line) is { Success: true } m) found.TrySetResult(m);
        }
    }

    /// <summary>The first line (already printed or still to come) that matches <paramref name="pattern"/>; fails the test
    /// when the process exits first or <paramref name="timeout"/> passes. <paramref name="onlyNew"/>: only a line still to come.</summary>
    public async Task<Match> WaitForLine(string pattern, TimeSpan timeout, bool onlyNew = false)
    {
        var regex = new Regex(pattern);
        var found = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (output)
        {
            foreach (var line in onlyNew ? [] : output.ToString().Split('\n'))
                if (regex.Match(line.TrimEnd('\r')) is { Success: true } m) return m;
            waiters.Add((regex, found));
        }
        var done = await Task.WhenAny(found.Task, outputClosed.Task, Task.Delay(timeout));
        if (done == found.Task) return await found.Task;
        Assert.Fail($"no line matching '{pattern}' {(done == outputClosed.Task ? "before the process exited" : $"within {timeout}")}; output:\n{Output}");
        throw new UnreachableException();
    }

    /// <summary>Sends a signal (15 SIGTERM, 2 SIGINT, 9 SIGKILL).</summary>
    public void Signal(int signal) => Kill(process.Id, signal);

    public static void Kill(int pid, int signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    /// <summary>Waits for the process to exit (and its output to be read to the end); its exit code.</summary>
    public async Task<int> WaitForExit(TimeSpan timeout)
    {
        try { await process.WaitForExitAsync().WaitAsync(timeout); await outputClosed.Task.WaitAsync(timeout); }
        catch (TimeoutException) { Assert.Fail($"the process did not exit within {timeout}; output:\n{Output}"); }
        return process.ExitCode;
    }

    public bool HasExited => process.HasExited;

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process.Dispose();
    }
}
