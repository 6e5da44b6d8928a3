using System.CommandLine;
using HcService.Cli;
using HcService.Contract.Config;
using HcService.Cli.Bench;
using HcService.Cli.Children;
using HcService.Cli.Client;
using HcService.Cli.Local;
using HcService.Cli.Up;
using HcService.Cli.Worker;

var root = new RootCommand("hc: hyper-connection pre-training experiments (HcService)\n\n" + ExitCodes.Help);
root.Add(ParamsCommand.Create());
root.Add(BenchCommand.Create());
root.Add(DataCommand.Create());
root.Add(TrainCommand.Create());
root.Add(ReportCommand.Create());
root.Add(WorkerCommand.Create());
root.Add(RunJobCommand.Create());
root.Add(RunEvalCommand.Create());
foreach (var c in ClientCommands.Create()) root.Add(c);
root.Add(UpCommand.Create());
root.Add(KeysCommand.Create());
root.Add(CompareCommand.Create());
root.Add(GroupsCommand.Create());

using var interrupted = new CancellationTokenSource();
try
{
    // Ctrl+C and SIGTERM cancel the command's token; the command stops what it started (`hc up`: worker, API and
    // PostgreSQL; a worker: its training process checkpoints and hands the run back) within its own bounds.
    var invocation = new InvocationConfiguration
    {
        EnableDefaultExceptionHandler = false,
        // hc up stops its worker (the stop timeout and the worker's own exit), then the API and PostgreSQL, one after the other.
        ProcessTerminationTimeout = HcService.Store.HcSettings.StopTimeoutOrDefault() + TimeSpan.FromSeconds(150),
    };
    var parsed = root.Parse(args);
    var exit = parsed.Invoke(invocation);
    // A usage error (a missing argument, an unknown option, a validator's refusal) is bad input, not a failed run.
    return parsed.Errors.Count > 0 && exit != ExitCodes.Ok ? ExitCodes.BadInput : exit;
}
catch (ConfigException e)
{
    // Invalid input: name every field, its value and what is allowed; no stack trace.
    foreach (var error in e.Errors) Console.Error.WriteLine($"error: {error}");
    return ExitCodes.BadInput;
}
catch (HttpRequestException e)
{
    // No answer at all (connection refused, no route, reset): one line, with what to do.
    Console.Error.WriteLine($"error: cannot reach the service: {e.Message} (is it running? `hc up` starts one; --server or HC_SERVER point elsewhere)");
    return ExitCodes.Unreachable;
}
catch (TaskCanceledException e) when (e.InnerException is TimeoutException)
{
    Console.Error.WriteLine($"error: the service did not answer in time ({e.InnerException.Message})");
    return ExitCodes.Unreachable;
}
catch (OperationCanceledException)
{
    // Ctrl+C or SIGTERM while a command waited: nothing half-done to report.
    Console.Error.WriteLine("interrupted");
    return ExitCodes.Interrupted;
}
catch (Exception e) when (Environment.GetEnvironmentVariable("HC_DEBUG") != "1")
{
    Console.Error.WriteLine($"error: {e.GetType().Name}: {e.Message} (an internal error of hc; HC_DEBUG=1 shows where)");
    return ExitCodes.Internal;
}
