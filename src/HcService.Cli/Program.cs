using System.CommandLine;
using HcService.Cli.Commands;
using HcService.Core.Config;

var root = new RootCommand("hc: hyper-connection pre-training experiments (HcService)");
root.Add(ParamsCommand.Create());
root.Add(BenchCommand.Create());
root.Add(DataCommand.Create());
root.Add(TrainCommand.Create());
root.Add(ReportCommand.Create());
root.Add(HcService.Cli.Service.WorkerCommand.Create());
root.Add(HcService.Cli.Service.RunJobCommand.Create());
root.Add(HcService.Cli.Service.RunEvalCommand.Create());
foreach (var c in HcService.Cli.Service.ClientCommands.Create()) root.Add(c);
root.Add(HcService.Cli.Service.UpCommand.Create());
root.Add(HcService.Cli.Service.KeysCommand.Create());
root.Add(HcService.Cli.Service.CompareCommand.Create());

try
{
    // Ctrl+C cancels the command's token; `hc up` then needs time to stop its worker, API and PostgreSQL cleanly.
    return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = TimeSpan.FromSeconds(60) });
}
catch (ConfigException e)
{
    // Invalid input: name every field, its value and what is allowed; no stack trace.
    foreach (var error in e.Errors) Console.Error.WriteLine($"error: {error}");
    return 2;
}
