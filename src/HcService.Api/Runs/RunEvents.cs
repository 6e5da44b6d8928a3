using System.Text.Json;
using HcService.Store;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace HcService.Api.Runs;

/// <summary>
/// GET /api/runs/{id}/events: server-sent events for live watching. `status` events carry the run summary whenever its
/// status, step or attempt changes; `metric` events carry new metric points (optionally only the names in `names`).
/// `names` takes metric names and prefixes ending in '/' (e.g. `train/loss,val/`). The stream ends after the run
/// reaches a terminal state. Polls PostgreSQL once a second, so any API instance can serve it.
/// </summary>
public static class RunEvents
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public static void MapRunEvents(this RouteGroupBuilder g) =>
        g.MapGet("/{id:long}/events", Stream).WithSummary("Server-sent events: status changes and new metric points, until the run ends")
            .Produces(200, contentType: "text/event-stream").ProducesProblem(404);

    static async Task Stream(long id, HttpContext http, HcDbContext db, string? names, CancellationToken ct)
    {
        var wanted = names?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (wanted is { Length: > 200 } || wanted?.Any(n => n.Length > 200) == true)
        {
            await Results.Problem(title: "Invalid names", detail: $"names = '{names?[..Math.Min(80, names.Length)]}...': must be at most 200 comma-separated metric names or prefixes",
                statusCode: 400).ExecuteAsync(http);
            return;
        }
        if (!await db.Runs.AnyAsync(r => r.Id == id, ct))
        {
            await Results.Problem(title: "Run not found", detail: $"there is no run {id}", statusCode: 404).ExecuteAsync(http);
            return;
        }
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        string? lastStatus = null;
        var lastTime = DateTimeOffset.MinValue;
        while (!ct.IsCancellationRequested)
        {
            var run = await db.Runs.AsNoTracking().FirstAsync(r => r.Id == id, ct);
            // New points since the last poll (a second's worth), filtered by name here: exact names or prefixes ending in '/'.
            var fresh = await db.Metrics.AsNoTracking().Where(m => m.RunId == id && m.Time > lastTime)
                .OrderBy(m => m.Time).ThenBy(m => m.Step).Take(20_000).ToListAsync(ct);
            if (fresh.Count > 0) lastTime = fresh[^1].Time;
            var points = wanted is null ? fresh
                : fresh.Where(m => wanted.Any(w => w.EndsWith('/') ? m.Name.StartsWith(w, StringComparison.Ordinal) : m.Name == w)).ToList();
            foreach (var p in points)
                await Send(http, "metric", new { p.Name, p.Step, p.Tokens, p.Value }, ct);
            var summary = RunSummary.Of(run);
            var key = $"{run.Status}/{run.Step}/{run.Attempt}";
            if (key != lastStatus) await Send(http, "status", summary, ct);
            lastStatus = key;
            if (RunStatus.IsTerminal(run.Status)) return;
            await Task.Delay(1000, ct);
        }
    }

    static async Task Send(HttpContext http, string kind, object data, CancellationToken ct)
    {
        await http.Response.WriteAsync($"event: {kind}\ndata: {JsonSerializer.Serialize(data, Json)}\n\n", ct);
        await http.Response.Body.FlushAsync(ct);
    }
}
