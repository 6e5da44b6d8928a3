using Microsoft.Extensions.Logging;
using HcService.Store;
using System.Diagnostics;
using System.Text;
using HcService.Store.Jobs;
using HcService.Store.Runs;

namespace HcService.Cli.Processes;

/// <summary>A child `hc` process of a worker (a training attempt, an evaluation): the worker's settings passed in its
/// environment; what it writes becomes the worker's log records (stdout as information, stderr as warnings, each line
/// prefixed with the child's name and carrying the trace and span of the activity that started it, so that the child's
/// events reach OpenTelemetry with the attempt's trace); the tail of stderr kept for the failure reason.</summary>
public sealed class ChildRunner : IDisposable
{
    const int StderrTailChars = 4000;
    readonly StringBuilder tail = new();
    public Process Process { get; }

    ChildRunner(Process process) => Process = process;

    /// <param name="intercept">Sees each stdout line first; true when it consumed the line (metrics relayed by the child).</param>
    public static ChildRunner Start(IEnumerable<string> args, string connectionString, HcPaths paths, string prefix, ILogger log,
        Func<string, bool>? intercept = null)
    {
        var psi = StartInfo();
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["ConnectionStrings__hc"] = connectionString;
        psi.Environment[HcSettings.DataRootSetting.Name] = paths.DataRoot;
        psi.Environment[HcSettings.CheckpointRootSetting.Name] = paths.CheckpointRoot;
        psi.Environment[WorkerPidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!psi.Environment.ContainsKey("GLIBC_TUNABLES"))
            psi.Environment["GLIBC_TUNABLES"] = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296";
        psi.RedirectStandardError = true;
        psi.RedirectStandardOutput = true;
        var runner = new ChildRunner(new Process { StartInfo = psi });
        var started = Activity.Current;
        void Log(LogLevel level, string line)
        {
            // The output handlers run on threads of their own: log within the activity that started the child.
            var previous = Activity.Current;
            Activity.Current = started;
            try { log.Log(level, "[{Child}] {Line}", prefix, line); }
            finally { Activity.Current = previous; }
        }
        runner.Process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (runner.tail) { runner.tail.AppendLine(e.Data); if (runner.tail.Length > 2 * StderrTailChars) runner.tail.Remove(0, runner.tail.Length - StderrTailChars); }
            Log(LogLevel.Warning, e.Data);
        };
        runner.Process.OutputDataReceived += (_, e) => { if (e.Data is not null && intercept?.Invoke(e.Data) != true) Log(LogLevel.Information, e.Data); };
        runner.Process.Start();
        runner.Process.BeginErrorReadLine();
        runner.Process.BeginOutputReadLine();
        return runner;
    }

    /// <summary>The last 4000 characters the child wrote to stderr.</summary>
    public string StderrTail()
    {
        lock (tail) return (tail.Length > StderrTailChars ? tail.ToString(tail.Length - StderrTailChars, StderrTailChars) : tail.ToString()).Trim();
    }

    /// <summary>The settings a worker passes to its child (<see cref="Start"/>), read back in the child, once: the
    /// connection string and the service's settings (the data and checkpoint roots must have been passed).</summary>
    public static (string ConnectionString, HcSettings Settings) Settings()
    {
        static string Get(string name) => Environment.GetEnvironmentVariable(name) ?? throw new InvalidOperationException($"{name} is not set");
        _ = Get(HcSettings.DataRootSetting.Name);
        _ = Get(HcSettings.CheckpointRootSetting.Name);
        return (Get("ConnectionStrings__hc"), HcSettings.FromEnvironment());
    }

    /// <summary>The environment variable that tells a child its worker's process id.</summary>
    internal const string WorkerPidVariable = "HC_WORKER_PID";

    /// <summary>The process id of the worker that started this child: passed in its environment, because the child's own
    /// parent at the time it asks may already be another process (a worker killed while the child was still starting
    /// leaves it orphaned before it could look); the current parent when it was not passed (a child started by hand).</summary>
    public static int WorkerPid(Func<int> currentParent) =>
        int.TryParse(Environment.GetEnvironmentVariable(WorkerPidVariable), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out var pid) ? pid : currentParent();

    /// <summary>SIGTERM (the process checkpoints or shuts down cleanly), then SIGKILL of its tree after <paramref name="grace"/>.
    /// True when it stopped by itself.</summary>
    public static async Task<bool> StopGracefully(Process process, TimeSpan grace)
    {
        if (process.HasExited) return true;
        _ = kill(process.Id, SIGTERM);
        using var timeout = new CancellationTokenSource(grace);
        try { await process.WaitForExitAsync(timeout.Token); return true; }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return false;
        }
    }

    const int SIGTERM = 15;
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int sig);

    /// <summary>How to start this same `hc` program again: the apphost, or `dotnet hc.dll`.</summary>
    internal static ProcessStartInfo StartInfo()
    {
        var self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(ChildRunner).Assembly.Location);
        return psi;
    }

    public void Dispose() => Process.Dispose();
}
