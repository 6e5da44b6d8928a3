using HcService.Contract.Jobs;
using HcService.Contract.Metrics;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using HcService.Api;
using HcService.Store;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using HcService.Cli.Client;
using HcService.Cli.Processes;
using HcService.Cli.Worker;

namespace HcService.Cli.Up;

/// <summary>
/// `hc up`: the whole service on one machine. An embedded PostgreSQL (initdb into --home once, pg_ctl on a free
/// loopback port; a server left running by a killed `hc up` is taken over), migrations, the API in this process, and a
/// supervised worker as a child process (restarted when it dies; it stops by itself when this process is killed).
/// Ctrl+C or SIGTERM stops everything cleanly in any phase; a run in progress is checkpointed at its current step and
/// handed back, and resumes on the next `hc up` on the same home. With --demo it submits one experiment group on the
/// shipped corpus, `tiny` residual and `tiny` DHC x4 at three seeds each, waits for the six runs, prints their final
/// losses, the seed-paired comparison (mean +/- std, the paired delta with its 95% interval, the verdict) and the links,
/// and exits (0 only if every run succeeded).
/// </summary>
static class UpCommand
{
    public static Command Create()
    {
        var home = new Option<string>("--home") { Description = "Folder for the database, checkpoints and logs", DefaultValueFactory = _ => ".hc" };
        var port = new Option<int>("--port") { Description = "API port on 127.0.0.1 (0: any free port)", DefaultValueFactory = _ => 5080 };
        var root = DataRootOption.Create();
        var demo = new Option<bool>("--demo") { Description = "Run the demo (tiny residual vs tiny DHC x4, three seeds each), print the seed-paired comparison, then stop" };
        var keep = new Option<bool>("--keep") { Description = "With --demo: keep serving after the demo (its links keep working) until Ctrl+C or SIGTERM" };
        var cmd = new Command("up", "Run the service locally: embedded PostgreSQL, the web UI, API, Swagger, Hangfire dashboard and a worker") { home, port, root, demo, keep };
        cmd.Validators.Add(r => { if (r.GetValue(keep) && !r.GetValue(demo)) r.AddError("--keep goes with --demo (without --demo, hc up keeps serving anyway)"); });
        cmd.SetAction(async (r, ct) => await Run(r.GetValue(home)!, r.GetValue(port), DataRootOption.Resolve(r.GetValue(root)), r.GetValue(demo), r.GetValue(keep), ct));
        return cmd;
    }

    static async Task<int> Run(string homeArg, int port, string dataRoot, bool demo, bool keep, CancellationToken cancel)
    {
        // SIGTERM and Ctrl+C cancel ct in every phase; everything started so far is stopped.
        using var signals = new StopSignals(cancel);
        var ct = signals.Token;
        var home = Path.GetFullPath(homeArg);
        dataRoot = Path.GetFullPath(dataRoot);
        var checkpointRoot = Path.Combine(home, "checkpoints");
        Directory.CreateDirectory(checkpointRoot);
        // One hc up per home: a second one would take over the first one's PostgreSQL and, stopping, stop it under it.
        // The kernel drops the lock with the process, however it ends, so a killed hc up never blocks the next one.
        using var homeLock = LockHome(home);
        if (homeLock is null)
        {
            Console.Error.WriteLine($"error: another hc up is running on {home}; stop it first (Ctrl+C), or give this one its own --home");
            return ExitCodes.BadInput;
        }
        await using var pg = new EmbeddedPostgres(Path.Combine(home, "postgres"));
        WebApplication? app = null;
        WorkerSupervisor? worker = null;
        var exit = 0;
        var demoDone = false;   // with --keep: the demo finished, so a later Ctrl+C ends with its result
        try
        {
            Console.WriteLine($"starting PostgreSQL ({pg.DataDir})...");
            await pg.StartAsync(ct);
            if (pg.Adopted) Console.WriteLine($"PostgreSQL was still running on port {pg.Port} (an earlier hc up did not stop it): using it");

            if (port == 0) port = EmbeddedPostgres.FreePort();
            var url = $"http://127.0.0.1:{port}";
            app = ApiApp.BuildLocal(pg.ConnectionString, dataRoot, checkpointRoot, url);
            await ApiApp.MigrateAsync(app.Services, ct);
            var (adminKey, keyNote) = await AdminKey(home, app.Services, ct);
            await app.StartAsync(ct);

            var log = Path.Combine(home, "worker.log");
            worker = new WorkerSupervisor(() => StartWorker(pg.ConnectionString, dataRoot, checkpointRoot, log, Environment.ProcessId),
                message => Console.WriteLine($"{DateTime.Now:HH:mm:ss} {message}"));
            worker.Start();
            Console.WriteLine($"Web UI:    {url}/");
            Console.WriteLine($"API:       {url}");
            Console.WriteLine($"Swagger:   {url}/swagger");
            Console.WriteLine($"Dashboard: {url}/hangfire");
            Console.WriteLine($"Metrics:   {url}/metrics (Prometheus; the worker's is in its log)");
            Console.WriteLine($"Data root: {dataRoot}");
            Console.WriteLine($"Worker:    process {worker.Current.Id} on queue cpu, restarted if it exits (log: {log})");
            Console.WriteLine($"PostgreSQL: {pg.ConnectionString}");
            if (adminKey is not null) Console.WriteLine($"API key: {adminKey}");
            Console.WriteLine($"           {keyNote}");
            Console.WriteLine("For the hc client in another shell:");
            Console.WriteLine($"export HC_SERVER={url}");
            if (adminKey is not null) Console.WriteLine($"export HC_API_KEY={adminKey}");

            if (demo)
            {
                exit = await Demo(url, adminKey ?? await DemoKey(app.Services, ct), ct);
                if (keep)
                {
                    demoDone = true;
                    Console.WriteLine($"demo done; still serving at {url}/ (Ctrl+C or SIGTERM stops everything)");
                    await Task.Delay(Timeout.Infinite, ct);
                }
            }
            else
            {
                Console.WriteLine("serving; Ctrl+C or SIGTERM stops everything (a run in progress is checkpointed and resumes on the next hc up)");
                await Task.Delay(Timeout.Infinite, ct);
            }
        }
        // Asked to stop: a clean stop, 0 while serving; 130 when it interrupted the demo.
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { exit = demo && !demoDone ? 130 : exit; }
        finally
        {
            Console.WriteLine("stopping worker, API and PostgreSQL...");
            if (worker is not null)
            {
                await worker.StopAsync(WorkerCommand.StopTimeout + TimeSpan.FromSeconds(20));
                await worker.DisposeAsync();
            }
            if (app is not null)
            {
                await app.StopAsync(CancellationToken.None);
                await app.DisposeAsync();
            }
            await pg.StopAsync();
            Console.WriteLine("stopped");
        }
        return exit;
    }

    /// <summary>The installation's admin key for the export lines. A new database's first key is created here and kept in
    /// <c>HOME/api-key</c> (mode 600; the database holds only its hash), so that every later `hc up` on the home prints
    /// it again. Returns the key (null when this home has keys but no file: an older home) and a line about it.</summary>
    static async Task<(string? Key, string Note)> AdminKey(string home, IServiceProvider services, CancellationToken ct)
    {
        var file = Path.Combine(home, "api-key");
        if (await HcService.Api.Auth.ApiKeys.BootstrapAsync(services, ct) is { } created)
        {
            await File.WriteAllTextAsync(file, "", CancellationToken.None);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);   // before the key is in it
            await File.WriteAllTextAsync(file, created + "\n", CancellationToken.None);
            return (created, $"(admin scope; kept in {file}: hc keys create makes more, Swagger's Authorize takes it)");
        }
        if (File.Exists(file)) return ((await File.ReadAllTextAsync(file, ct)).Trim(), $"(admin scope, from {file})");
        return (null, "keys exist already in this home and none is kept in it (hc keys create makes more)");
    }

    static async Task<string> DemoKey(IServiceProvider services, CancellationToken ct)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<HcService.Store.HcDbContext>();
        return (await HcService.Api.Auth.ApiKeys.CreateAsync(db, "hc up --demo", HcService.Api.Auth.Scopes.Submit, ct: ct)).Key;
    }

    /// <summary>The demo's seeds: three, the fewest that give an interval with some power.</summary>
    static readonly int[] DemoSeeds = [1, 2, 3];

    static async Task<int> Demo(string url, string apiKey, CancellationToken ct)
    {
        using var http = ClientCommands.Client(url, apiKey);
        // One group: the residual baseline and DHC x4 at each seed, with in-loop downstream evaluation at the end on the
        // 7 tasks of the paper's average (the shipped 30-item excerpts).
        var group = $$"""
            { "name": "demo-{{DateTime.UtcNow:yyyyMMdd-HHmmss}}", "seeds": [{{string.Join(", ", DemoSeeds)}}],
              "base": { "name": "tiny-residual", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
                        "training": { "tokenBudget": "{{DemoTokens}}" }, "tags": ["demo"],
                        "evaluation": { "tasks": ["arc_easy", "hellaswag", "piqa", "sciq", "openbookqa", "copa", "winogrande"], "limit": 30 } },
              "variants": [ { "name": "tiny-dhc4", "connection": { "type": "dynamic-hc", "rate": 4 } } ] }
            """;
        using var response = await http.PostAsync("/api/groups", new StringContent(group, Encoding.UTF8, "application/json"), ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) return ClientCommands.Fail(response, body);
        var runs = JsonNode.Parse(body)!["runs"]!.AsArray().Select(r => (Name: r!["name"]!.GetValue<string>(), Id: r["id"]!.GetValue<long>())).ToList();
        Console.WriteLine($"submitted group {JsonNode.Parse(body)!["group"]}: {string.Join(", ", runs.Select(r => $"{r.Name} (run {r.Id})"))}");
        var exit = 0;
        foreach (var (_, id) in runs) exit |= await ClientCommands.Wait(http, id, ct);
        Console.WriteLine();
        foreach (var (name, id) in runs)
        {
            var detail = (await http.GetFromJsonAsync<JsonNode>($"/api/runs/{id}", ct))!;
            var m = detail["latestMetrics"]!;
            string Val(string metric) => m[metric]?["value"]?.GetValue<double>().ToString("F4", CultureInfo.InvariantCulture) ?? "-";
            Console.WriteLine($"{name,-16} run {id}: {detail["run"]!["status"]}, train loss {Val(MetricRegistry.TrainLoss.Name)}, " +
                              $"validation loss {Val(MetricRegistry.ValidationLossOf("valid-austen-bytes"))} (austen), {Val(MetricRegistry.ValidationLossOf("valid-wikitext-bytes"))} (wikitext)  {url}/api/runs/{id}");
        }
        Console.WriteLine();
        await CompareCommand.Print(http, [.. runs.Select(r => r.Id)], runs[0].Id, ct);
        Console.WriteLine();
        Console.WriteLine($"What this can show: whether DHC x4 beats residual on this 2-layer, d = 64 model after {DemoTokens} tokens, beyond the noise of " +
                          $"{DemoSeeds.Length} seeds; not the paper's effect at 1B-7B parameters and hundreds of billions of tokens, nor downstream accuracy " +
                          "(30 items a task near chance: one item is 3.3 points, and a difference within two standard errors is marked noise).");
        Console.WriteLine($"Web UI: {url}/#/?q={Uri.EscapeDataString(runs[0].Name.Split("-s")[0])}   Swagger: {url}/swagger   Dashboard: {url}/hangfire");
        return exit;
    }

    const string DemoTokens = "100K";

    /// <summary>Starts `hc worker` on the cpu queue, its output appended to <paramref name="log"/> by the shell that
    /// execs it (not through a pipe of this process: the log goes on when this process is killed).</summary>
    /// <param name="parentPid">The worker stops (handing its run back) when this process is gone.</param>
    internal static Process StartWorker(string connectionString, string dataRoot, string checkpointRoot, string log, int? parentPid = null)
    {
        var hc = ChildRunner.StartInfo();
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (var a in new[] { "-c", "log=$1; shift; exec \"$@\" >>\"$log\" 2>&1", "sh", log, hc.FileName }) psi.ArgumentList.Add(a);
        foreach (var a in hc.ArgumentList) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "worker", "--connection", connectionString, "--queue", DeviceQueues.Cpu, "--data-root", dataRoot, "--checkpoint-root", checkpointRoot })
            psi.ArgumentList.Add(a);
        if (parentPid is { } pid) { psi.ArgumentList.Add("--parent-pid"); psi.ArgumentList.Add(pid.ToString(CultureInfo.InvariantCulture)); }
        return Process.Start(psi)!;
    }


    /// <summary>An exclusive lock on HOME/up.lock (flock; not inherited by child processes), or null when another process holds it.</summary>
    static FileStream? LockHome(string home)
    {
        try { return new FileStream(Path.Combine(home, "up.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException) { return null; }
    }
}
