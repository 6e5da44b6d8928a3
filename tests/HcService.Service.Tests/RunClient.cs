using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace HcService.Service.Tests;

/// <summary>The API as the tests use it: submit, read, wait for states and steps, find a run's training process.</summary>
public static class RunClient
{
    public static readonly string[] Ended = ["succeeded", "failed", "cancelled"];

    public static async Task<(HttpStatusCode Status, JsonNode? Body)> Submit(this ServiceFixture svc, string spec, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/runs") { Content = new StringContent(spec, Encoding.UTF8, "application/json") };
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        using var response = await svc.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }

    public static async Task<long> SubmitOk(this ServiceFixture svc, string spec)
    {
        var (status, body) = await svc.Submit(spec);
        Assert.True(status == HttpStatusCode.Created, $"{status}: {body}");
        return body!["id"]!.GetValue<long>();
    }

    public static async Task<JsonNode> Run(this ServiceFixture svc, long id) => (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs/{id}"))!;

    /// <summary>Polls until the run is in one of <paramref name="states"/>; answers that fail (a database restart) are retried.</summary>
    public static async Task<(string Status, TimeSpan After)> WaitFor(this ServiceFixture svc, long id, string[] states, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        var status = "?";
        while (true)
        {
            try { status = (await svc.Run(id))["run"]!["status"]!.GetValue<string>(); }
            catch (HttpRequestException) { status = "(the API answered with an error)"; }
            if (states.Contains(status)) return (status, sw.Elapsed);
            if (sw.Elapsed > timeout) Assert.Fail($"run {id} still {status} after {timeout}; worker log:\n{svc.WorkerLog}");
            await Task.Delay(250);
        }
    }

    public static async Task WaitForStep(this ServiceFixture svc, long id, long step)
    {
        var sw = Stopwatch.StartNew();
        while ((await svc.Run(id))["run"]!["step"]!.GetValue<long>() < step)
        {
            if (sw.Elapsed > TimeSpan.FromMinutes(2)) Assert.Fail($"run {id} did not reach step {step}; worker log:\n{svc.WorkerLog}");
            await Task.Delay(250);
        }
    }

    /// <summary>The steps of one metric series, all of them.</summary>
    public static async Task<List<(long Step, double Value)>> Series(this ServiceFixture svc, long id, string name)
    {
        var series = (await svc.Http.GetFromJsonAsync<JsonNode>($"api/runs/{id}/metrics?names={Uri.EscapeDataString(name)}&maxPoints=100000"))!.AsArray();
        return series.Count == 0 ? [] : series[0]!["points"]!.AsArray().Select(p => (p!["step"]!.GetValue<long>(), p["value"]!.GetValue<double>())).ToList();
    }

    /// <summary>A run row of <paramref name="steps"/> steps on <paramref name="queue"/> (one no worker serves), claimed as
    /// attempt 1 with a long lease (nothing reaps it): for tests that write as a training process does.</summary>
    /// <param name="spec">The run's spec (its plan resolved as the API would); none for tests that never train.</param>
    public static async Task<(long Id, Npgsql.NpgsqlDataSource Db, HcService.Store.Runs.RunLifecycle Leases)> ClaimedRun(this ServiceFixture svc, string name, string queue, long steps,
        HcService.Contract.Jobs.JobSpec? spec = null)
    {
        var db = Npgsql.NpgsqlDataSource.Create(svc.Postgres.ConnectionString);
        await using var cmd = db.CreateCommand("""
            INSERT INTO hc.runs ("Name", "Spec", "Plan", "Preset", "Architecture", "Connection", "Rate", "Tags", "Status", "Queue", "Attempt",
                "MaxAttempts", "TotalSteps", "TokenBudget", "Step", "Tokens", "CancelRequested", "CreatedAt", "UpdatedAt")
            VALUES ($1, $4::jsonb, $5::jsonb, 'tiny', 'dense', 'residual', 1, '{}', 'queued', $3, 0, 3, $2, $2 * 1024, 0, 0, false, now(), now())
            RETURNING "Id"
            """);
        cmd.Parameters.Add(new() { Value = name });
        cmd.Parameters.Add(new() { Value = steps });
        cmd.Parameters.Add(new() { Value = queue });
        cmd.Parameters.Add(new() { Value = spec?.ToJson() ?? "{}", NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = spec is null ? DBNull.Value : HcService.Contract.Jobs.JobPlan.Resolve(spec).ToJson(), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        var id = (long)(await cmd.ExecuteScalarAsync())!;
        var leases = new HcService.Store.Runs.RunLifecycle(db, new HcService.Store.Runs.LeaseOptions { Duration = TimeSpan.FromMinutes(30) });
        Assert.Equal(1, (await leases.StartAttemptAsync(id, $"test:1:{queue}", CancellationToken.None))!.Attempt);
        return (id, db, leases);
    }

    /// <summary>The pid of the run's training process (`hc run-job --run-id N`) started from this test build's hc.dll, never
    /// one of another checkout or of a service someone runs on the same machine (their run ids collide with ours).</summary>
    public static async Task<long> ChildPid(long runId)
    {
        var hc = System.Text.RegularExpressions.Regex.Escape(Path.Combine(AppContext.BaseDirectory, "hc.dll"));
        for (var i = 0; i < 100; i++)
        {
            var psi = new ProcessStartInfo("pgrep", ["-f", $"{hc} run-job --run-id {runId} "]) { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            var output = (await p.StandardOutput.ReadToEndAsync()).Trim();
            await p.WaitForExitAsync();
            if (output.Length > 0) return long.Parse(output.Split('\n')[0]);
            await Task.Delay(100);
        }
        throw new InvalidOperationException($"no training process found for run {runId}");
    }
}
