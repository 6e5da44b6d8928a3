using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using HcService.Store;
using HcService.Store.Runs;
using Npgsql;

namespace HcService.Api.Runs;

/// <summary>
/// GET /api/runs/{id}/events: server-sent events for live watching, from the run's event log and its metric points, so
/// any API instance can serve any stream and nothing is lost between two looks.
/// <list type="bullet">
/// <item><c>status</c>: every status transition, in the order it committed (queued, running with its attempt,
/// cancelling, queued again after a hand-back or a lost worker, and the final state with its reason).</item>
/// <item><c>metric</c>: every metric point (only the names in <c>names</c>, exact names or prefixes ending in '/'), in the
/// order its batch committed; a point rewritten with a new value (a step replayed after a lost worker) comes again.</item>
/// </list>
/// Each event has an id <c>s{status event}.m{metric point}</c>: the position after it. Reconnecting with that id as
/// <c>Last-Event-ID</c> (or <c>?lastEventId=</c>) resumes with no gap and no duplicate. The final status comes after every
/// metric point, then the stream ends. Woken by PostgreSQL notifications (<see cref="RunEventHub"/>); comments keep an idle
/// connection open; a database outage pauses the stream instead of ending it; a stopping API ends it (clients resume).
/// </summary>
public static partial class RunEvents
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
    const int Page = 5000;
    static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    public static void MapRunEvents(this RouteGroupBuilder g) =>
        g.MapGet("/{id:long}/events", Stream).WithName("streamRunEvents")
            .WithSummary("Server-sent events: every status transition and every metric point, with ids for Last-Event-ID, until the run ends")
            .Produces(200, contentType: "text/event-stream").ProducesProblem(400).ProducesProblem(404);

    /// <summary>A stream position: everything up to status event <c>S</c> and metric point <c>M</c> has been sent.</summary>
    readonly record struct Cursor(long S, long M)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"s{S}.m{M}");
    }

    [GeneratedRegex(@"^s([0-9]{1,18})\.m([0-9]{1,18})$")]
    private static partial Regex CursorFormat();

    /// <param name="id">The run.</param>
    /// <param name="names">Only these metric points: comma-separated exact names or prefixes ending in "/"; absent: every point.</param>
    /// <param name="lastEventId">Resume after this event id (s&lt;N&gt;.m&lt;M&gt;), as the Last-Event-ID header does.</param>
    /// <param name="from">start (default): the run's whole history, then what follows; now: its latest status, then only
    /// what follows. A Last-Event-ID (header or lastEventId) wins over either.</param>
    static async Task Stream(long id, HttpContext http, NpgsqlDataSource db, RunEventHub hub, ILoggerFactory logs,
        IHostApplicationLifetime lifetime, string? names, string? lastEventId, string? from, CancellationToken aborted)
    {
        // A stopping API ends its streams (the clients resume on another instance, or on this one once it is back).
        using var stopOrAbort = CancellationTokenSource.CreateLinkedTokenSource(aborted, lifetime.ApplicationStopping);
        var ct = stopOrAbort.Token;
        try { await Follow(id, http, db, hub, logs, names, lastEventId, from, ct); }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { /* the client left, or the API is stopping */ }
    }

    static async Task Follow(long id, HttpContext http, NpgsqlDataSource db, RunEventHub hub, ILoggerFactory logs, string? names, string? lastEventId,
        string? from, CancellationToken ct)
    {
        if (from is not (null or "start" or "now"))
        {
            await Results.Problem(title: Problems.QueryTitle, statusCode: 400,
                detail: $"from = '{from[..Math.Min(80, from.Length)]}': must be start (the whole history, the default) or now (the run's current status, then what happens next)").ExecuteAsync(http);
            return;
        }
        var wanted = names?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (wanted.Length > 200 || wanted.Any(n => n.Length > 200))
        {
            await Results.Problem(title: Problems.QueryTitle, detail: $"names = '{names?[..Math.Min(80, names.Length)]}...': must be at most 200 comma-separated metric names or prefixes",
                statusCode: 400).ExecuteAsync(http);
            return;
        }
        var (field, given) = http.Request.Headers["Last-Event-ID"].FirstOrDefault() is { Length: > 0 } header ? ("Last-Event-ID", header) : ("lastEventId", lastEventId);
        var cursor = new Cursor(0, 0);
        if (given is { Length: > 0 })
        {
            var m = CursorFormat().Match(given);
            if (!m.Success)
            {
                await Results.Problem(title: "Invalid event id", statusCode: 400,
                    detail: $"{field} = '{given[..Math.Min(80, given.Length)]}': must be an id this stream sent, like s12.m3456 (s: status event, m: metric point)").ExecuteAsync(http);
                return;
            }
            cursor = new Cursor(long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        }
        else if (from == "now")
        {
            // From the current state: the latest status event (it says where the run is), then only what comes after.
            await using var now = db.CreateCommand("""
                SELECT coalesce((SELECT max("Id") FROM hc.run_events WHERE "RunId" = $1), 1) - 1,
                       coalesce((SELECT max("Seq") FROM hc.metric_points WHERE "RunId" = $1), 0)
                """);
            now.Parameters.Add(new() { Value = id });
            await using var r = await now.ExecuteReaderAsync(ct);
            if (await r.ReadAsync(ct)) cursor = new Cursor(r.GetInt64(0), r.GetInt64(1));
        }
        string? lastStatus;
        await using (var cmd = db.CreateCommand("""
            SELECT (SELECT "Status" FROM hc.run_events WHERE "RunId" = $1 AND "Id" <= $2 ORDER BY "Id" DESC LIMIT 1)
            FROM hc.runs WHERE "Id" = $1
            """))
        {
            cmd.Parameters.Add(new() { Value = id });
            cmd.Parameters.Add(new() { Value = cursor.S });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            if (!await r.ReadAsync(ct))
            {
                await Results.Problem(title: "Run not found", detail: $"there is no run {id}", statusCode: 404).ExecuteAsync(http);
                return;
            }
            lastStatus = r.IsDBNull(0) ? null : r.GetString(0);
        }

        var log = logs.CreateLogger("HcService.Events");
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";   // a proxy in front must not hold the stream back
        await http.Response.WriteAsync("retry: 2000\n\n", ct);
        await http.Response.Body.FlushAsync(ct);
        var exact = wanted.Where(w => !w.EndsWith('/')).ToArray();
        var prefixes = wanted.Where(w => w.EndsWith('/')).ToArray();
        var quiet = System.Diagnostics.Stopwatch.StartNew();
        var outage = false;
        while (!ct.IsCancellationRequested)
        {
            var signal = hub.Arm(id);   // before reading: a commit after the reads below wakes the wait
            var before = cursor;
            try
            {
                var (events, upTo) = await ReadEvents(db, id, cursor.S, ct);
                if (outage) log.LogInformation("run {Run} event stream: database back", id);
                outage = false;
                // The final state waits until every point before it is sent; the transitions before it go first.
                var last = events.Count > 0 && RunStatus.IsTerminal(events[^1].Status) ? events[^1] : null;
                var text = new StringBuilder();
                foreach (var e in events)
                {
                    if (e == last) break;
                    cursor = cursor with { S = e.Id };
                    Append(text, "status", cursor, e);
                    lastStatus = e.Status;
                }
                await Write(http, text, ct);
                while (true)
                {
                    var points = await ReadPoints(db, id, cursor.M, upTo, exact, prefixes, ct);
                    foreach (var p in points)
                    {
                        cursor = cursor with { M = p.Seq };
                        Append(text, "metric", cursor, new { p.Name, p.Step, p.Tokens, p.Value });
                    }
                    await Write(http, text, ct);
                    if (points.Count < Page) break;
                }
                if (last is not null)
                {
                    cursor = cursor with { S = last.Id };
                    Append(text, "status", cursor, last with { Final = true });
                    lastStatus = last.Status;
                    await Write(http, text, ct);
                }
                if (cursor != before) quiet.Restart();
                if (lastStatus is not null && RunStatus.IsTerminal(lastStatus)) return;
            }
            catch (Exception e) when (DbRetry.IsTransient(e) && !ct.IsCancellationRequested)
            {
                // The database is away (a restart): keep the connection, say so, and look again shortly.
                if (!outage) log.LogWarning("run {Run} event stream: database unavailable ({Error}); waiting", id, e.Message.Split('\n')[0]);
                outage = true;
                await http.Response.WriteAsync(": database unavailable; the stream resumes when it is back\n\n", ct);
                await http.Response.Body.FlushAsync(ct);
                quiet.Restart();
                await Task.Delay(1000, ct);
                continue;
            }
            var wait = KeepAlive - quiet.Elapsed;
            if (wait <= TimeSpan.Zero)
            {
                await http.Response.WriteAsync(": keep-alive\n\n", ct);
                await http.Response.Body.FlushAsync(ct);
                quiet.Restart();
                wait = KeepAlive;
            }
            await Task.WhenAny(signal, Task.Delay(wait < RunEventHub.FallbackWake ? wait : RunEventHub.FallbackWake, ct));
        }
    }

    /// <summary>The data of a status event.</summary>
    /// <summary>The data of a status event. <c>Final</c>: the stream ends with it (a final state earlier in a run's
    /// history, before a retry, is not final).</summary>
    sealed record StatusEvent(long Id, long RunId, string Status, string? Previous, int Attempt, long Step, long TotalSteps, string? Reason, DateTimeOffset Time,
        bool Final = false);

    sealed record Point(long Seq, string Name, long Step, long Tokens, double Value);

    /// <summary>The status events after <paramref name="after"/> and, in the same snapshot, the number of the run's latest
    /// committed point: the points to send with these events are those up to it, so a final state is sent after exactly
    /// the points committed before it, never after points of an attempt that a retry started since. (Points are
    /// numbered under the run's row lock, so none numbered below it can commit later.)</summary>
    static async Task<(List<StatusEvent> Events, long UpTo)> ReadEvents(NpgsqlDataSource db, long id, long after, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
        var events = new List<StatusEvent>();
        await using (var cmd = new NpgsqlCommand("""
            SELECT "Id", "Status", "Previous", "Attempt", "Step", "TotalSteps", "Reason", "Time" FROM hc.run_events
            WHERE "RunId" = $1 AND "Id" > $2 ORDER BY "Id"
            """, conn, tx) { Parameters = { new() { Value = id }, new() { Value = after } } })
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                events.Add(new StatusEvent(r.GetInt64(0), id, r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetInt32(3), r.GetInt64(4),
                    r.GetInt64(5), r.IsDBNull(6) ? null : r.GetString(6), r.GetFieldValue<DateTimeOffset>(7)));
        await using var latest = new NpgsqlCommand("""SELECT coalesce(max("Seq"), 0) FROM hc.metric_points WHERE "RunId" = $1""", conn, tx)
            { Parameters = { new() { Value = id } } };
        var upTo = (long)(await latest.ExecuteScalarAsync(ct))!;
        await tx.CommitAsync(ct);
        return (events, upTo);
    }

    static async Task<List<Point>> ReadPoints(NpgsqlDataSource db, long id, long after, long upTo, string[] exact, string[] prefixes, CancellationToken ct)
    {
        var filtered = exact.Length + prefixes.Length > 0;
        await using var cmd = db.CreateCommand($"""
            SELECT "Seq", "Name", "Step", "Tokens", "Value" FROM hc.metric_points
            WHERE "RunId" = $1 AND "Seq" > $2 AND "Seq" <= $3
            {(filtered ? """AND ("Name" = ANY($4) OR EXISTS (SELECT 1 FROM unnest($5::text[]) p WHERE starts_with("Name", p)))""" : "")}
            ORDER BY "Seq" LIMIT {Page}
            """);
        cmd.Parameters.Add(new() { Value = id });
        cmd.Parameters.Add(new() { Value = after });
        cmd.Parameters.Add(new() { Value = upTo });
        if (filtered)
        {
            cmd.Parameters.Add(new() { Value = exact });
            cmd.Parameters.Add(new() { Value = prefixes });
        }
        var points = new List<Point>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) points.Add(new Point(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetDouble(4)));
        return points;
    }

    static void Append(StringBuilder text, string kind, Cursor id, object data) =>
        text.Append("id: ").Append(id.ToString()).Append("\nevent: ").Append(kind).Append("\ndata: ").Append(JsonSerializer.Serialize(data, Json)).Append("\n\n");

    static async Task Write(HttpContext http, StringBuilder text, CancellationToken ct)
    {
        if (text.Length == 0) return;
        await http.Response.WriteAsync(text.ToString(), ct);
        await http.Response.Body.FlushAsync(ct);
        text.Clear();
    }
}
