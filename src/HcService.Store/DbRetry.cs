using HcService.Store.Runs;
using System.Diagnostics;
using System.Net.Sockets;
using Npgsql;

namespace HcService.Store;

/// <summary>
/// Retrying a database write through an outage (a PostgreSQL restart, a failover, a network blip) for a bounded time:
/// what a training process must do so that a database restart costs it nothing. Only transient failures are retried;
/// a constraint violation or a bad statement fails at once.
/// </summary>
public static class DbRetry
{
    /// <summary>Connection-level failures and the server states of a restart (57P01 admin shutdown, 57P03 starting up,
    /// class 08 connection exceptions, class 53 insufficient resources).</summary>
    public static bool IsTransient(Exception e) => e switch
    {
        PostgresException p => p.IsTransient || p.SqlState.StartsWith("57P", StringComparison.Ordinal) || p.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException n => n.IsTransient || n.InnerException is SocketException or IOException or TimeoutException,
        SocketException or TimeoutException => true,
        _ => false,
    };

    /// <summary>Runs <paramref name="write"/> until it succeeds, backing off from 0.25 s to 5 s, for at most
    /// <paramref name="budget"/>; then the last error is thrown. (The training child's writes are synchronous.)</summary>
    public static T Run<T>(Func<T> write, TimeSpan budget, Action<string>? log = null) =>
        RunAsync(_ => Task.FromResult(write()), budget, log, CancellationToken.None).GetAwaiter().GetResult();

    public static void Run(Action write, TimeSpan budget, Action<string>? log = null) => Run(() => { write(); return 0; }, budget, log);

    /// <summary>Retries <paramref name="write"/> through transient failures for at most <paramref name="budget"/>.</summary>
    public static async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> write, TimeSpan budget, Action<string>? log, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(250);
        for (var tries = 1; ; tries++)
        {
            try { return await write(ct); }
            catch (Exception e) when (IsTransient(e) && clock.Elapsed + delay < budget)
            {
                if (tries == 1 || tries % 10 == 0) log?.Invoke($"database unavailable ({e.Message.Split('\n')[0]}); retrying for up to {budget.TotalSeconds:0} s");
                await Task.Delay(delay, ct);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }
}
