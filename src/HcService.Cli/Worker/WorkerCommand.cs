using HcService.Contract.Jobs;
using Microsoft.Extensions.Logging;
using HcService.Store;
using System.CommandLine;
using Hangfire;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using HcService.Api.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Npgsql;
using HcService.Cli.Processes;

namespace HcService.Cli.Worker;

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
        queue.AcceptOnlyFromAmong(DeviceQueues.Cpu, DeviceQueues.Cuda);
        var root = DataRootOption.Create();
        var checkpoints = CheckpointRootOption.Create();
        var metricsPort = new Option<int?>("--metrics-port")
        {
            Description = "Serve /metrics (Prometheus) and /healthz on 127.0.0.1:PORT (default: $HC_WORKER_METRICS_PORT on all interfaces, for containers; else a free loopback port)",
        };
        var parent = new Option<int?>("--parent-pid") { Description = "Stop (handing the run back) when this process, the worker's parent, is gone (`hc up` passes its own)", Hidden = true };
        var cmd = new Command("worker", "Run a worker: a Hangfire server that trains queued runs, one at a time, in child processes. " +
            "SIGTERM/Ctrl+C: the run in progress is checkpointed at its current step and handed back, then the worker exits 0");
        foreach (var o in new Option[] { connection, queue, root, checkpoints, metricsPort, parent }) cmd.Add(o);
        cmd.SetAction(async (r, cancel) =>
        {
            using var signals = new StopSignals(cancel);
            var ct = signals.Token;
            var cs = ConnectionOption.Resolve(r.GetValue(connection));
            var paths = new HcPaths { DataRoot = DataRootOption.Resolve(r.GetValue(root)), CheckpointRoot = CheckpointRootOption.Resolve(r.GetValue(checkpoints)) };
            var url = r.GetValue(metricsPort) is { } port ? $"http://127.0.0.1:{port}"
                : Environment.GetEnvironmentVariable("HC_WORKER_METRICS_PORT") is { Length: > 0 } env ? $"http://0.0.0.0:{env}" : "http://127.0.0.1:0";
            var host = CreateHost(cs, paths, r.GetValue(queue)!, url);
            try { await host.StartAsync(ct); }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return 0; }   // stopped while starting
            Console.WriteLine($"worker: queue {r.GetValue(queue)}, data root {paths.DataRoot}, checkpoints {paths.CheckpointRoot}, metrics {string.Join(" ", host.Urls)}/metrics");
            using var orphan = r.GetValue(parent) is { } pid ? WatchParent(pid, host.Lifetime) : null;
            await host.WaitForShutdownAsync(ct);
            Console.WriteLine("worker: stopped");
            return 0;
        });
        return cmd;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    static extern int getppid();

    /// <summary>Stops the worker when its parent (the `hc up` that started it) is gone, e.g. killed with SIGKILL: the run in
    /// progress is checkpointed and handed back, so that the next `hc up` on the same home resumes it.</summary>
    static Timer WatchParent(int parentPid, IHostApplicationLifetime lifetime) => new(_ =>
    {
        if (getppid() == parentPid || lifetime.ApplicationStopping.IsCancellationRequested) return;
        Console.WriteLine($"worker: parent process {parentPid} is gone; stopping");
        lifetime.StopApplication();
    }, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

    /// <summary>How long a stopping worker lets its training process checkpoint and hand the run back before killing it
    /// ($HC_STOP_TIMEOUT_SECONDS, default 60): a deployment's stop grace period (compose's stop_grace_period, Kubernetes'
    /// terminationGracePeriodSeconds) must exceed it by some seconds.</summary>
    public static TimeSpan StopTimeout => HcSettings.FromEnvironment().StopTimeout;

    static Action<string> LeaseLog(IServiceProvider sp)
    {
        var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("HcService.Leases");
        return message => logger.LogWarning("{Message}", message);
    }

    /// <summary>The worker: a Hangfire server, the lease reaper, and /metrics + /healthz on <paramref name="url"/>.</summary>
    /// <param name="configureTracing">Extra tracing setup (tests add an in-memory exporter).</param>
    /// <param name="configure">Extra host setup (tests add a log provider).</param>
    public static WebApplication CreateHost(string connectionString, HcPaths paths, string queue, string url,
        Action<OpenTelemetry.Trace.TracerProviderBuilder>? configureTracing = null, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.AddHcTelemetry("hc-worker", configureTracing);
        // One line per event, with the time: the worker's log (hc up keeps it in .hc/worker.log) is read by people.
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        var state = new WorkerState(queue);
        var settings = HcSettings.FromEnvironment();
        var leases = settings.Leases;
        builder.Services.AddSingleton(paths);
        builder.Services.AddSingleton(state);
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        builder.Services.AddSingleton(sp => new RunLifecycle(sp.GetRequiredService<NpgsqlDataSource>(), leases));
        builder.Services.AddSingleton(sp => new EvaluationJobs(sp.GetRequiredService<NpgsqlDataSource>()));
        var stopTimeout = settings.StopTimeout;
        builder.Services.AddSingleton<IRunExecutor>(sp => new RunExecutor(connectionString, paths, sp.GetRequiredService<RunLifecycle>(), state,
            sp.GetRequiredService<IBackgroundJobClient>(), stopTimeout, sp.GetRequiredService<ILoggerFactory>().CreateLogger("HcService.Worker.Runs")));
        // Stopping waits for the training process's hand-back: Hangfire's and the host's shutdown outlast it.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = stopTimeout + TimeSpan.FromSeconds(15));
        builder.Services.AddSingleton(sp => new LeaseReaper(sp.GetRequiredService<RunLifecycle>(),
            sp.GetRequiredService<IBackgroundJobClient>(), LeaseLog(sp)));
        builder.Services.AddHostedService<LeaseReaperService>();
        builder.Services.AddTransient<TrainingJob>();
        builder.Services.AddSingleton<IEvaluationExecutor>(sp => new EvaluationExecutor(sp.GetRequiredService<EvaluationJobs>(), connectionString, paths, state,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("HcService.Worker.Evaluations")));
        builder.Services.AddTransient<EvaluationJobRunner>();
        builder.Services.AddHangfire(c => c.UseHcStorage(connectionString));
        builder.Services.AddHangfireServer(o =>
        {
            o.WorkerCount = 1;
            o.Queues = [queue];
            o.ServerName = state.Name;
            o.SchedulePollingInterval = TimeSpan.FromSeconds(1);
            o.ShutdownTimeout = stopTimeout + TimeSpan.FromSeconds(10);
        });
        configure?.Invoke(builder);
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
        ?? throw new HcService.Contract.Config.ConfigException([new("--connection", null, "a PostgreSQL connection string (flag or ConnectionStrings__hc)")]);
}
