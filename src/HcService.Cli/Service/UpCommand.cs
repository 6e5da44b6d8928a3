using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using HcService.Api;
using HcService.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace HcService.Cli.Service;

/// <summary>
/// `hc up`: the whole service on one machine. An embedded PostgreSQL (initdb into --home once, pg_ctl on a free
/// loopback port), migrations, the API in this process, and a worker as a child process. Ctrl+C or SIGTERM stops
/// everything cleanly. With --demo it submits a `tiny` residual run and a `tiny` DHC x4 run on the shipped corpus,
/// waits for both, prints their final losses and the links, and exits (0 only if both succeeded).
/// </summary>
static class UpCommand
{
    public static Command Create()
    {
        var home = new Option<string>("--home") { Description = "Folder for the database, checkpoints and logs", DefaultValueFactory = _ => ".hc" };
        var port = new Option<int>("--port") { Description = "API port on 127.0.0.1 (0: any free port)", DefaultValueFactory = _ => 5080 };
        var root = Commands.DataRootOption.Create();
        var demo = new Option<bool>("--demo") { Description = "Run the demo (tiny residual vs tiny DHC x4), print the results, then stop" };
        var cmd = new Command("up", "Run the service locally: embedded PostgreSQL, API, Swagger, Hangfire dashboard and a worker") { home, port, root, demo };
        cmd.SetAction(async (r, ct) => await Run(r.GetValue(home)!, r.GetValue(port), Commands.DataRootOption.Resolve(r.GetValue(root)), r.GetValue(demo), ct));
        return cmd;
    }

    static async Task<int> Run(string homeArg, int port, string dataRoot, bool demo, CancellationToken ct)
    {
        var home = Path.GetFullPath(homeArg);
        dataRoot = Path.GetFullPath(dataRoot);
        var checkpointRoot = Path.Combine(home, "checkpoints");
        Directory.CreateDirectory(checkpointRoot);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });

        await using var pg = new EmbeddedPostgres(Path.Combine(home, "postgres"));
        Console.WriteLine($"starting PostgreSQL ({pg.DataDir})...");
        await pg.StartAsync(stop.Token);

        if (port == 0) port = EmbeddedPostgres.FreePort();
        var url = $"http://127.0.0.1:{port}";
        var app = ApiApp.BuildLocal(pg.ConnectionString, dataRoot, checkpointRoot, url);
        await ApiApp.MigrateAsync(app.Services);
        // The first admin key of this installation, printed once; the demo submits with a key of its own.
        var adminKey = await HcService.Api.Auth.ApiKeys.BootstrapAsync(app.Services, stop.Token);
        await app.StartAsync(stop.Token);

        var worker = StartWorker(pg.ConnectionString, dataRoot, checkpointRoot, Path.Combine(home, "worker.log"));
        Console.WriteLine($"API:       {url}");
        Console.WriteLine($"Swagger:   {url}/swagger");
        Console.WriteLine($"Dashboard: {url}/hangfire");
        Console.WriteLine($"Metrics:   {url}/metrics (Prometheus; the worker's is in its log)");
        Console.WriteLine($"Data root: {dataRoot}");
        Console.WriteLine($"Worker:    process {worker.Id} on queue cpu (log: {Path.Combine(home, "worker.log")})");
        Console.WriteLine($"PostgreSQL: {pg.ConnectionString}");
        Console.WriteLine(adminKey is not null
            ? $"API key: {adminKey}\n           (admin scope, shown only now: export HC_API_KEY=<key> for the hc client, or paste it into Swagger's Authorize)"
            : "API key:   keys exist already in this home (hc keys create makes more)");

        var exit = 0;
        try
        {
            if (demo) exit = await Demo(url, adminKey ?? await DemoKey(app.Services, stop.Token), stop.Token);
            else
            {
                Console.WriteLine("serving; Ctrl+C stops everything");
                await Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) { exit = 130; }
        finally
        {
            Console.WriteLine("stopping worker, API and PostgreSQL...");
            await StopWorker(worker);
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            await pg.StopAsync();
        }
        return exit;
    }

    static async Task<string> DemoKey(IServiceProvider services, CancellationToken ct)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<HcService.Store.HcDbContext>();
        return (await HcService.Api.Auth.ApiKeys.CreateAsync(db, "hc up --demo", HcService.Api.Auth.Scopes.Submit, ct: ct)).Key;
    }

    static async Task<int> Demo(string url, string apiKey, CancellationToken ct)
    {
        using var http = ClientCommands.Client(url, apiKey);
        var ids = new List<(string Label, long Id)>();
        foreach (var (label, connection) in new[] { ("tiny residual", """{ "type": "residual" }"""), ("tiny DHC x4", """{ "type": "dynamic-hc", "rate": 4 }""") })
        {
            // With in-loop downstream evaluation on the 7 tasks of the paper's average (the shipped 30-item excerpts).
            var spec = $$"""
                { "model": { "preset": "tiny" }, "architecture": "dense", "connection": {{connection}}, "training": { "tokenBudget": "100K" },
                  "evaluation": { "tasks": ["arc_easy", "hellaswag", "piqa", "sciq", "openbookqa", "copa", "winogrande"], "limit": 30 }, "tags": ["demo"] }
                """;
            using var response = await http.PostAsync("/api/runs", new StringContent(spec, Encoding.UTF8, "application/json"), ct);
            response.EnsureSuccessStatusCode();
            var run = (await response.Content.ReadFromJsonAsync<JsonNode>(ct))!;
            ids.Add((label, run["id"]!.GetValue<long>()));
            Console.WriteLine($"submitted {label}: run {run["id"]}");
        }
        var exit = 0;
        foreach (var (label, id) in ids) exit |= await ClientCommands.Wait(http, id, ct);
        Console.WriteLine();
        foreach (var (label, id) in ids)
        {
            var detail = (await http.GetFromJsonAsync<JsonNode>($"/api/runs/{id}", ct))!;
            var m = detail["latestMetrics"]!;
            string Val(string name) => m[name]?["value"]?.GetValue<double>().ToString("F4", CultureInfo.InvariantCulture) ?? "-";
            Console.WriteLine($"{label,-14} run {id}: {detail["run"]!["status"]}, train loss {Val("train/loss")}, " +
                              $"validation loss {Val("val/valid-austen-bytes/loss")} (austen), {Val("val/valid-wikitext-bytes/loss")} (wikitext)  {url}/api/runs/{id}");
        }
        Console.WriteLine();
        await CompareCommand.Print(http, [.. ids.Select(i => i.Id)], null, ct);
        Console.WriteLine($"Swagger: {url}/swagger   Dashboard: {url}/hangfire");
        return exit;
    }

    internal static Process StartWorker(string connectionString, string dataRoot, string checkpointRoot, string log)
    {
        var psi = ChildRunner.StartInfo();
        foreach (var a in new[] { "worker", "--connection", connectionString, "--queue", "cpu", "--data-root", dataRoot, "--checkpoint-root", checkpointRoot })
            psi.ArgumentList.Add(a);
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        var p = Process.Start(psi)!;
        var writer = new StreamWriter(log, append: true) { AutoFlush = true };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (writer) writer.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (writer) writer.WriteLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>SIGTERM (Hangfire shuts down gracefully), then SIGKILL after 20 s.</summary>
    static Task StopWorker(Process worker) => ChildRunner.StopGracefully(worker, TimeSpan.FromSeconds(20));

}
