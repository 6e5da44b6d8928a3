using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.Http.Json;
using HcService.Api;
using HcService.Api.Auth;
using HcService.Contract.Data;
using HcService.Store;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace HcService.Service.Tests;

/// <summary>
/// The real service for the tests: a PostgreSQL server of its own (initdb into a temp folder, a free port), the API on a
/// free loopback port, and worker processes (`hc worker`) whose runs execute in child processes. The data root is a
/// copy of the shipped datasets plus `broken-bytes`, whose manifest lies about its token count, so that a run can pass
/// validation and then fail inside the training process. Leases last <see cref="LeaseSeconds"/> (30 s in production)
/// so that lost workers are detected quickly. <see cref="Http"/> carries an admin key.
/// </summary>
public sealed class ServiceFixture : IAsyncLifetime
{
    public string Home { get; } = RepoPaths.TempDir("service");
    public EmbeddedPostgres Postgres { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public string Url { get; private set; } = "";
    public string DataRoot => Path.Combine(Home, "datasets");
    /// <summary>The API's HC_UPLOAD_MAX_MIB here: small, so that a test can send a body over it.</summary>
    public const int UploadMaxMiB = 4;
    public string CheckpointRoot => Path.Combine(Home, "checkpoints");
    public const int LeaseSeconds = 12;
    public string AdminKey { get; private set; } = "";
    WebApplication? api;
    readonly List<Process> workers = [];
    readonly Dictionary<Process, string> metricsUrls = [];
    readonly System.Text.StringBuilder workerLog = new();

    public async Task InitializeAsync()
    {
        foreach (var name in new[] { "corpus-bytes", "valid-austen-bytes", "valid-wikitext-bytes" })
            CopyDir(Path.Combine(RepoPaths.DataRoot, name), Path.Combine(DataRoot, name));
        CopyDir(Path.Combine(RepoPaths.DataRoot, "valid-austen-bytes"), Path.Combine(DataRoot, "broken-bytes"));
        CopyDir(Path.Combine(RepoPaths.DataRoot, "eval"), Path.Combine(DataRoot, "eval"));   // the downstream task excerpts
        var manifestPath = Path.Combine(DataRoot, "broken-bytes", DatasetManifest.FileName);
        var manifest = DatasetManifest.Parse(File.ReadAllText(manifestPath), manifestPath);
        File.WriteAllText(manifestPath, (manifest with { TokenCount = manifest.TokenCount + 1 }).ToJson());
        // Datasets that would fail inside a training process, each found at submit time (HostileInputTests): token ids
        // beyond a byte model's vocabulary under a manifest that says "bytes"; a folder linked from outside the data
        // root; a manifest that is not JSON. And a task file that parses as no task format (a run fails at its start).
        CopyDir(Path.Combine(RepoPaths.DataRoot, "valid-austen-bytes"), Path.Combine(DataRoot, "big-ids-bytes"));
        var bigIds = Path.Combine(DataRoot, "big-ids-bytes", manifest.Files[0].Name);
        long dataOffset;
        using (var fs = File.OpenRead(bigIds)) dataOffset = NpyFile.ReadHeader(fs, bigIds).DataOffset;
        using (var fs = new FileStream(bigIds, FileMode.Open, FileAccess.Write)) { fs.Position = dataOffset + 2 * 10; fs.Write(BitConverter.GetBytes((ushort)300)); }
        CopyDir(Path.Combine(RepoPaths.DataRoot, "valid-austen-bytes"), Path.Combine(Home, "outside-data-root", "elsewhere-bytes"));
        File.CreateSymbolicLink(Path.Combine(DataRoot, "linked-bytes"), Path.Combine(Home, "outside-data-root", "elsewhere-bytes"));
        Directory.CreateDirectory(Path.Combine(DataRoot, "invalid-manifest"));
        File.WriteAllText(Path.Combine(DataRoot, "invalid-manifest", DatasetManifest.FileName), "{ \"tokenizer\": ");
        File.WriteAllText(Path.Combine(DataRoot, "eval", "broken-task.jsonl"), "this is not a task\n");
        Directory.CreateDirectory(CheckpointRoot);

        Postgres = new EmbeddedPostgres(Path.Combine(Home, "postgres"));
        await Postgres.StartAsync();
        var port = EmbeddedPostgres.FreePort();
        Url = $"http://127.0.0.1:{port}";
        // The API (in this process) and the workers (children, which inherit it) read the lease length from here.
        Environment.SetEnvironmentVariable("HC_LEASE_SECONDS", LeaseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        api = ApiApp.BuildLocal(Postgres.ConnectionString, DataRoot, CheckpointRoot, Url,
            b =>
            {
                b.Logging.AddProvider(new ErrorLog(serverErrors));
                b.Configuration[HcService.Store.HcSettings.UploadMaxMiBSetting.Name] = UploadMaxMiB.ToString(System.Globalization.CultureInfo.InvariantCulture);
            });
        await ApiApp.MigrateAsync(api.Services);
        AdminKey = (await ApiKeys.BootstrapAsync(api.Services))!;
        await api.StartAsync();
        Http = Client(AdminKey);
        StartWorker();
    }

    /// <summary>A client of the API with <paramref name="key"/> as its bearer token (none: anonymous).</summary>
    /// <summary>Makes a new admin key the fixture's (a test that revoked the old one): from now on <see cref="Http"/> sends it.</summary>
    public async Task AdoptAdminKey(HttpResponseMessage created)
    {
        created.EnsureSuccessStatusCode();
        AdminKey = (await created.Content.ReadFromJsonAsync<System.Text.Json.Nodes.JsonNode>())!["key"]!.GetValue<string>();
        Http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
    }

    public HttpClient Client(string? key)
    {
        var http = new HttpClient { BaseAddress = new Uri(Url + "/"), Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    /// <summary>Creates a key with <paramref name="scope"/> through the API.</summary>
    public async Task<string> CreateKey(string scope)
    {
        using var response = await Http.PostAsJsonAsync("api/keys", new { name = $"test {scope}", scope });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<System.Text.Json.Nodes.JsonNode>())!["key"]!.GetValue<string>();
    }

    /// <summary>An evaluation job's status once it has ended (succeeded or failed), or the last one seen at the deadline.
    /// Evaluation jobs have no event stream, so this polls the job every 200 ms.</summary>
    public async Task<string> WaitForEvaluation(string jobUrl, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var status = "";
        while (status is not ("succeeded" or "failed") && DateTime.UtcNow < deadline)
        {
            status = (await Http.GetFromJsonAsync<System.Text.Json.Nodes.JsonNode>(jobUrl.TrimStart('/')))!["status"]!.GetValue<string>();
            if (status is not ("succeeded" or "failed")) await Task.Delay(200);
        }
        return status;
    }

    /// <summary>Starts one more worker process on the cpu queue (its /metrics on a free loopback port).</summary>
    public Process StartWorker()
    {
        var metricsPort = EmbeddedPostgres.FreePort();

        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "hc.dll"), "worker", "--connection", Postgres.ConnectionString,
                     "--queue", "cpu", "--data-root", DataRoot, "--checkpoint-root", CheckpointRoot, "--metrics-port", metricsPort.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        var worker = Process.Start(psi)!;
        lock (workers) { workers.Add(worker); metricsUrls[worker] = $"http://127.0.0.1:{metricsPort}/metrics"; }
        worker.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (workerLog) workerLog.AppendLine(e.Data); };
        worker.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (workerLog) workerLog.AppendLine(e.Data); };
        worker.BeginOutputReadLine();
        worker.BeginErrorReadLine();
        return worker;
    }

    public string WorkerLog { get { lock (workerLog) return workerLog.ToString(); } }
    /// <summary>Errors the API logged (unhandled exceptions behind a 500), for test failure messages.</summary>
    public string ServerErrors { get { lock (serverErrors) return serverErrors.ToString(); } }
    readonly System.Text.StringBuilder serverErrors = new();

    sealed class ErrorLog(System.Text.StringBuilder sink) : Microsoft.Extensions.Logging.ILoggerProvider, Microsoft.Extensions.Logging.ILogger
    {
        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Error;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            lock (sink) sink.AppendLine($"{formatter(state, exception)} {exception}");
        }
        public void Dispose() { }
    }
    /// <summary>Worker processes still running.</summary>
    public IReadOnlyList<Process> LiveWorkers { get { lock (workers) return workers.Where(w => !w.HasExited).ToList(); } }
    public bool WorkerAlive => LiveWorkers.Count > 0;
    /// <summary>The /metrics URLs of the worker processes still running.</summary>
    public IReadOnlyList<string> LiveWorkerMetricsUrls { get { lock (workers) return workers.Where(w => !w.HasExited).Select(w => metricsUrls[w]).ToList(); } }
    /// <summary>The API's endpoints (the security tests check every mutating one).</summary>
    public IEnumerable<Microsoft.AspNetCore.Http.Endpoint> Endpoints =>
        ((Microsoft.AspNetCore.Routing.IEndpointRouteBuilder)api!).DataSources.SelectMany(d => d.Endpoints);

    /// <summary>At least one worker running (a test that killed workers leaves the service as it found it).</summary>
    public void EnsureWorker() { if (!WorkerAlive) StartWorker(); }

    public async Task DisposeAsync()
    {
        foreach (var w in LiveWorkers) { w.Kill(entireProcessTree: true); await w.WaitForExitAsync(); }
        if (api is not null) { await api.StopAsync(); await api.DisposeAsync(); }
        await Postgres.StopAsync();
        Http.Dispose();
    }

    static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
        foreach (var d in Directory.GetDirectories(from)) CopyDir(d, Path.Combine(to, Path.GetFileName(d)));
    }
}

[CollectionDefinition("service")]
public sealed class ServiceCollection : ICollectionFixture<ServiceFixture>;
