using System.CommandLine;
using Hangfire;
using HcService.Store.Jobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using HcService.Api.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Npgsql;

namespace HcService.Cli.Service;

/// <summary>
/// `hc worker`: one Hangfire server for one device (WorkerCount = 1) on the queue of its device kind. Each run executes in
/// its own child process (<see cref="RunExecutor"/>). Start one per GPU; scale out with more machines on the same database.
/// </summary>
static class WorkerCommand
{
    public static Command Create()
    {
        var connection = ConnectionOption.Create();
        var queue = new Option<string>("--queue") { Description = "Device queue to serve: cpu or cuda", DefaultValueFactory = _ => "cpu" };
        queue.AcceptOnlyFromAmong("cpu", "cuda");
        var root = Commands.DataRootOption.Create();
        var checkpoints = CheckpointRootOption.Create();
        var metricsPort = new Option<int?>("--metrics-port")
        {
            Description = "Serve /metrics (Prometheus) and /healthz on 127.0.0.1:PORT (default: $HC_WORKER_METRICS_PORT on all interfaces, for containers; else a free loopback port)",
        };
        var cmd = new Command("worker", "Run a worker: a Hangfire server that trains queued runs, one at a time, in child processes");
        foreach (var o in new Option[] { connection, queue, root, checkpoints, metricsPort }) cmd.Add(o);
        cmd.SetAction(async (r, ct) =>
        {
            var cs = ConnectionOption.Resolve(r.GetValue(connection));
            var paths = new HcPaths { DataRoot = Commands.DataRootOption.Resolve(r.GetValue(root)), CheckpointRoot = CheckpointRootOption.Resolve(r.GetValue(checkpoints)) };
            var url = r.GetValue(metricsPort) is { } port ? $"http://127.0.0.1:{port}"
                : Environment.GetEnvironmentVariable("HC_WORKER_METRICS_PORT") is { Length: > 0 } env ? $"http://0.0.0.0:{env}" : "http://127.0.0.1:0";
            var host = CreateHost(cs, paths, r.GetValue(queue)!, url);
            await host.StartAsync(ct);
            Console.WriteLine($"worker: queue {r.GetValue(queue)}, data root {paths.DataRoot}, checkpoints {paths.CheckpointRoot}, metrics {string.Join(" ", host.Urls)}/metrics");
            await host.WaitForShutdownAsync(ct);
            return 0;
        });
        return cmd;
    }

    /// <summary>The worker: a Hangfire server, the lease reaper, and /metrics + /healthz on <paramref name="url"/>.</summary>
    /// <param name="configureTracing">Extra tracing setup (tests add an in-memory exporter).</param>
    public static WebApplication CreateHost(string connectionString, HcPaths paths, string queue, string url, Action<OpenTelemetry.Trace.TracerProviderBuilder>? configureTracing = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.AddHcTelemetry("hc-worker", configureTracing);
        var state = new WorkerState(queue);
        var leases = LeaseOptions.FromEnvironment();
        builder.Services.AddSingleton(paths);
        builder.Services.AddSingleton(state);
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        builder.Services.AddSingleton(sp => new RunLeases(sp.GetRequiredService<NpgsqlDataSource>(), leases));
        builder.Services.AddSingleton<IRunExecutor>(sp => new RunExecutor(connectionString, paths, sp.GetRequiredService<RunLeases>(), state));
        builder.Services.AddSingleton(sp => new LeaseReaper(sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<RunLeases>(),
            sp.GetRequiredService<IBackgroundJobClient>(), Console.WriteLine));
        builder.Services.AddHostedService<LeaseReaperService>();
        builder.Services.AddTransient<TrainingJob>();
        builder.Services.AddSingleton<IEvaluationExecutor>(sp => new EvaluationExecutor(sp.GetRequiredService<NpgsqlDataSource>(), connectionString, paths, state));
        builder.Services.AddTransient<EvaluationJobRunner>();
        builder.Services.AddHangfire(c => c.UseHcStorage(connectionString));
        builder.Services.AddHangfireServer(o =>
        {
            o.WorkerCount = 1;
            o.Queues = [queue];
            o.ServerName = state.Name;
            o.SchedulePollingInterval = TimeSpan.FromSeconds(1);
            o.ShutdownTimeout = TimeSpan.FromSeconds(15);
        });
        var app = builder.Build();
        app.MapPrometheusScrapingEndpoint();
        app.MapGet("/healthz", () => Results.Ok(new { status = "alive", worker = state.Name, run = state.CurrentRun }));
        return app;
    }
}

/// <summary>--connection: the flag, else ConnectionStrings__hc, else HC_DATABASE_URL.</summary>
static class ConnectionOption
{
    public static Option<string?> Create() => new("--connection") { Description = "PostgreSQL connection string (default: $ConnectionStrings__hc)" };

    public static string Resolve(string? flag) => flag ?? Environment.GetEnvironmentVariable("ConnectionStrings__hc")
        ?? throw new HcService.Core.Config.ConfigException([new("--connection", null, "a PostgreSQL connection string (flag or ConnectionStrings__hc)")]);
}

/// <summary>--checkpoint-root: the flag, else $HC_CHECKPOINT_ROOT, else ./.hc/checkpoints.</summary>
static class CheckpointRootOption
{
    public static Option<string?> Create() => new("--checkpoint-root") { Description = "Checkpoint store shared by workers and the API (default: $HC_CHECKPOINT_ROOT, else ./.hc/checkpoints)" };

    public static string Resolve(string? flag) => Path.GetFullPath(flag ?? Environment.GetEnvironmentVariable("HC_CHECKPOINT_ROOT") ?? Path.Combine(Environment.CurrentDirectory, ".hc", "checkpoints"));
}
