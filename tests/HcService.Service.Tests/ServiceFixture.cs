using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using HcService.Api;
using HcService.Core.Data;
using HcService.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace HcService.Service.Tests;

/// <summary>
/// The real service for the tests: a PostgreSQL server of its own (initdb into a temp folder, a free port), the API on a
/// free loopback port, and one worker process (`hc worker`) whose runs execute in child processes. The data root is a
/// copy of the shipped datasets plus `broken-bytes`, whose manifest lies about its token count, so that a run can pass
/// validation and then fail inside the training process.
/// </summary>
public sealed class ServiceFixture : IAsyncLifetime
{
    public string Home { get; } = RepoPaths.TempDir("service");
    public EmbeddedPostgres Postgres { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public string Url { get; private set; } = "";
    public string DataRoot => Path.Combine(Home, "datasets");
    public string CheckpointRoot => Path.Combine(Home, "checkpoints");
    WebApplication? api;
    Process? worker;
    readonly System.Text.StringBuilder workerLog = new();

    public async Task InitializeAsync()
    {
        foreach (var name in new[] { "corpus-bytes", "valid-austen-bytes", "valid-wikitext-bytes" })
            CopyDir(Path.Combine(RepoPaths.DataRoot, name), Path.Combine(DataRoot, name));
        CopyDir(Path.Combine(RepoPaths.DataRoot, "valid-austen-bytes"), Path.Combine(DataRoot, "broken-bytes"));
        var manifestPath = Path.Combine(DataRoot, "broken-bytes", DatasetManifest.FileName);
        var manifest = DatasetManifest.Parse(File.ReadAllText(manifestPath), manifestPath);
        File.WriteAllText(manifestPath, (manifest with { TokenCount = manifest.TokenCount + 1 }).ToJson());
        Directory.CreateDirectory(CheckpointRoot);

        Postgres = new EmbeddedPostgres(Path.Combine(Home, "postgres"));
        await Postgres.StartAsync();
        var port = EmbeddedPostgres.FreePort();
        Url = $"http://127.0.0.1:{port}";
        api = ApiApp.BuildLocal(Postgres.ConnectionString, DataRoot, CheckpointRoot, Url);
        await ApiApp.MigrateAsync(api.Services);
        await api.StartAsync();
        Http = new HttpClient { BaseAddress = new Uri(Url + "/"), Timeout = TimeSpan.FromSeconds(60) };
        StartWorker();
    }

    public void StartWorker()
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "hc.dll"), "worker", "--connection", Postgres.ConnectionString,
                     "--queue", "cpu", "--data-root", DataRoot, "--checkpoint-root", CheckpointRoot })
            psi.ArgumentList.Add(a);
        worker = Process.Start(psi)!;
        worker.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (workerLog) workerLog.AppendLine(e.Data); };
        worker.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (workerLog) workerLog.AppendLine(e.Data); };
        worker.BeginOutputReadLine();
        worker.BeginErrorReadLine();
    }

    public string WorkerLog { get { lock (workerLog) return workerLog.ToString(); } }
    public bool WorkerAlive => worker is { HasExited: false };

    public async Task DisposeAsync()
    {
        if (worker is { HasExited: false }) { worker.Kill(entireProcessTree: true); await worker.WaitForExitAsync(); }
        if (api is not null) { await api.StopAsync(); await api.DisposeAsync(); }
        await Postgres.StopAsync();
        Http.Dispose();
    }

    static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
    }
}

[CollectionDefinition("service")]
public sealed class ServiceCollection : ICollectionFixture<ServiceFixture>;
