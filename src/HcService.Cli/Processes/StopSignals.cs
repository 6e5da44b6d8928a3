using System.Runtime.InteropServices;

namespace HcService.Cli.Processes;

/// <summary>
/// SIGTERM and SIGINT (Ctrl+C) as a cancellation token, from the first line of a command that must stop cleanly (`hc up`,
/// `hc worker`, `hc run-job`). The command line's own handler is registered only once an action has returned its task,
/// which leaves the runtime's default (exit 143 at once) in force while a command starts or, for an action that runs
/// inline, for its whole run. Every signal is handled (a terminal's Ctrl+C reaches a whole process group, and the
/// parent's SIGTERM follows it), so a stop is never turned into a kill by a second signal.
/// </summary>
sealed class StopSignals : IDisposable
{
    readonly CancellationTokenSource stop;
    readonly PosixSignalRegistration term, interrupt;

    public StopSignals(CancellationToken linked = default)
    {
        stop = CancellationTokenSource.CreateLinkedTokenSource(linked);
        term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
    }

    /// <summary>Cancelled by the first SIGTERM or SIGINT (or by the linked token).</summary>
    public CancellationToken Token => stop.Token;

    void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        try { stop.Cancel(); }
        catch (ObjectDisposedException) { /* the command has finished */ }
    }

    public void Dispose()
    {
        term.Dispose();
        interrupt.Dispose();
        stop.Dispose();
    }
}
