using HcService.Store.Runs;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace HcService.Store;

/// <summary>
/// A private PostgreSQL server for `hc up` and the tests: initdb into a folder (once), pg_ctl start on a free loopback
/// port, database "hc" for user "hc" (trust authentication, loopback only). PostgreSQL refuses to run as root, so as
/// root the server runs as the `postgres` user (runuser) and the folder is handed to it.
/// </summary>
public sealed class EmbeddedPostgres : IAsyncDisposable
{
    public string DataDir { get; }
    public int Port { get; private set; }
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=hc;Database=hc;Pooling=true;Timeout=15";
    readonly string binDir;
    readonly bool asPostgresUser = Environment.UserName == "root";
    bool started;

    public EmbeddedPostgres(string dataDir, string? binDir = null)
    {
        DataDir = Path.GetFullPath(dataDir);
        // As root the server runs as `postgres`, which must be able to reach the folder: under a private home
        // (e.g. /root, mode 700) it cannot, so the database moves to a folder of its own, named after the requested one.
        if (asPostgresUser && !TraversableByOthers(Path.GetDirectoryName(DataDir)!))
            DataDir = Path.Combine("/var/tmp", "hc-postgres-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(DataDir)))[..12]);
        this.binDir = binDir ?? FindBinDir();
    }

    static bool TraversableByOthers(string dir)
    {
        for (var d = new DirectoryInfo(dir); d is not null; d = d.Parent)
            if (d.Exists && (d.UnixFileMode & UnixFileMode.OtherExecute) == 0) return false;
        return true;
    }

    /// <summary>$HC_PG_BIN, else the newest /usr/lib/postgresql/N/bin.</summary>
    public static string FindBinDir()
    {
        if (Environment.GetEnvironmentVariable("HC_PG_BIN") is { Length: > 0 } env) return env;
        var versions = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Where(d => File.Exists(Path.Combine(d, "bin", "pg_ctl")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0).ToList()
            : [];
        return versions.Count > 0 ? Path.Combine(versions[0], "bin")
            : throw new InvalidOperationException("PostgreSQL server binaries not found: install postgresql (scripts/setup.sh does) or set HC_PG_BIN");
    }

    /// <summary>True when <see cref="StartAsync"/> found the server already running on this folder (left by a process that
    /// was killed before it could stop it) and took it over: it is stopped like one this instance started.</summary>
    public bool Adopted { get; private set; }

    public async Task StartAsync(CancellationToken ct = default)
    {
        Directory.CreateDirectory(DataDir);
        var pgData = Path.Combine(DataDir, "pgdata");
        if (asPostgresUser) await Exec("chown", ["-R", "postgres:postgres", DataDir], asPostgres: false, ct);
        if (!File.Exists(Path.Combine(pgData, "PG_VERSION")))
            await Exec(Path.Combine(binDir, "initdb"), ["-D", pgData, "-U", "hc", "--auth=trust", "-E", "UTF8", "--no-instructions"], asPostgresUser, ct);
        if (await RunningPort(pgData, ct) is { } running)
        {
            // pg_ctl start would refuse ("another server might be running"): use the server where it is.
            (Port, Adopted, started) = (running, true, true);
        }
        else
        {
            if (Port == 0) Port = FreePort();   // a restart keeps its port, so that connection strings stay valid
            var options = $"-p {Port} -h 127.0.0.1 -k {DataDir} -c fsync=on -c max_connections=200";
            started = true;   // from here on StopAsync stops it, even if this start is interrupted
            await Exec(Path.Combine(binDir, "pg_ctl"), ["-D", pgData, "-l", Path.Combine(DataDir, "postgres.log"), "-o", options, "-w", "-t", "60", "start"], asPostgresUser, ct);
        }
        await using var conn = new NpgsqlConnection($"Host=127.0.0.1;Port={Port};Username=hc;Database=postgres;Pooling=false");
        await conn.OpenAsync(ct);
        await using var check = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = 'hc'", conn);
        if (await check.ExecuteScalarAsync(ct) is null)
        {
            await using var create = new NpgsqlCommand("CREATE DATABASE hc", conn);
            await create.ExecuteNonQueryAsync(ct);
        }
    }

    /// <summary>Stops the server (fast shutdown: open transactions roll back, data is flushed); nothing when it is not running.</summary>
    public async Task StopAsync()
    {
        if (!started) return;
        started = false;
        var pgData = Path.Combine(DataDir, "pgdata");
        if (await RunningPort(pgData, default) is null) return;
        await Exec(Path.Combine(binDir, "pg_ctl"), ["-D", pgData, "-m", "fast", "-w", "stop"], asPostgresUser, default);
    }

    /// <summary>The port of the server running on <paramref name="pgData"/> (`pg_ctl status`, then line 4 of
    /// postmaster.pid), or null when none runs.</summary>
    async Task<int?> RunningPort(string pgData, CancellationToken ct)
    {
        var pidFile = Path.Combine(pgData, "postmaster.pid");
        if (!File.Exists(pidFile)) return null;
        if (await Exec(Path.Combine(binDir, "pg_ctl"), ["-D", pgData, "status"], asPostgresUser, ct, check: false) != 0) return null;
        var lines = await File.ReadAllLinesAsync(pidFile, ct);
        return lines.Length > 3 && int.TryParse(lines[3].Trim(), out var port) ? port : null;
    }

    /// <summary>Stops the server, waits, and starts it again on the same port (a database restart, for the tests).</summary>
    public async Task RestartAsync(TimeSpan down, CancellationToken ct = default)
    {
        await StopAsync();
        await Task.Delay(down, ct);
        await StartAsync(ct);
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    /// <summary>A free TCP port on the loopback interface.</summary>
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>Runs a server tool (as the postgres user when root); a non-zero exit throws with its output, unless
    /// <paramref name="check"/> is false. Returns the exit code.</summary>
    static async Task<int> Exec(string file, string[] args, bool asPostgres, CancellationToken ct, bool check = true)
    {
        var psi = new ProcessStartInfo(asPostgres ? "runuser" : file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = "/" };
        if (asPostgres) { psi.ArgumentList.Add("-u"); psi.ArgumentList.Add("postgres"); psi.ArgumentList.Add("--"); psi.ArgumentList.Add(file); }
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = p.StandardError.ReadToEndAsync(CancellationToken.None);
        // Never abandoned half-way (an interrupted initdb or pg_ctl leaves a broken folder or a server nobody stops): a
        // cancel takes effect when the tool is done. Each of them bounds its own time (pg_ctl -t 60).
        await p.WaitForExitAsync(CancellationToken.None);
        ct.ThrowIfCancellationRequested();
        if (check && p.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(file)} {string.Join(' ', args)} exited with {p.ExitCode}: {(await stderr).Trim()} {(await stdout).Trim()}");
        return p.ExitCode;
    }
}
