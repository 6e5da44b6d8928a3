using Npgsql;

namespace HcService.Api.Runs;

/// <summary>
/// Metric series read from PostgreSQL with the downsampling done by the database, so that the cost of a chart does not
/// grow with the length of the run. The first and last points are always exact. Between them:
/// <list type="bullet">
/// <item>a series with at most <c>maxPoints</c> points in range is returned whole;</item>
/// <item>up to <see cref="ExactFactor"/> x <c>maxPoints</c> points: bucket means over equal step ranges (one scan);</item>
/// <item>longer: each bucket is the mean of its first <see cref="ProbePoints"/> points, found by index probes, so the work
/// is maxPoints x 16 rows whatever the length (TensorBoard and MLflow likewise sample long series).</item>
/// </list>
/// A bucket's point sits at the mean step and tokens of the points it averages (its centre), so that a trend is not
/// shifted by half a bucket. Every lookup uses the primary key (RunId, Name, Step).
/// </summary>
public static class MetricQueries
{
    public const int ExactFactor = 16;
    public const int ProbePoints = 16;

    /// <summary>The run's metric names, by a loose index scan (one probe per name, not a scan of every point).</summary>
    public static async Task<List<string>> NamesAsync(NpgsqlDataSource db, long runId, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand("""
            WITH RECURSIVE n AS (
                SELECT min("Name") AS name FROM hc.metric_points WHERE "RunId" = @run
                UNION ALL
                SELECT (SELECT min("Name") FROM hc.metric_points WHERE "RunId" = @run AND "Name" > n.name) FROM n WHERE n.name IS NOT NULL)
            SELECT name FROM n WHERE name IS NOT NULL
            """);
        cmd.Parameters.AddWithValue("run", runId);
        var names = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) names.Add(r.GetString(0));
        return names;
    }

    /// <summary>
    /// The latest <c>train/loss</c> and <c>val/&lt;set&gt;/loss</c> of each run: the validation names by a loose index scan
    /// from "val/", then one backward index probe per (run, name), so a page costs a few probes per run whatever the
    /// length of its runs.
    /// </summary>
    public static async Task<IReadOnlyList<RunLatest>> LatestLossesAsync(NpgsqlDataSource db, long[] runIds, CancellationToken ct)
    {
        if (runIds.Length == 0) return [];
        await using var cmd = db.CreateCommand("""
            WITH RECURSIVE names AS (
                SELECT r.id AS run, (SELECT min("Name") FROM hc.metric_points WHERE "RunId" = r.id AND "Name" >= 'val/') AS name
                FROM unnest(@runs) AS r(id)
                UNION ALL
                SELECT names.run, (SELECT min("Name") FROM hc.metric_points WHERE "RunId" = names.run AND "Name" > names.name)
                FROM names WHERE names.name LIKE 'val/%'),
            wanted AS (
                SELECT run, name FROM names WHERE name LIKE 'val/%/loss'
                UNION ALL SELECT id, 'train/loss' FROM unnest(@runs) AS t(id))
            SELECT w.run, w.name, p."Step", p."Tokens", p."Value" FROM wanted w
            CROSS JOIN LATERAL (SELECT "Step", "Tokens", "Value" FROM hc.metric_points
                                WHERE "RunId" = w.run AND "Name" = w.name ORDER BY "Step" DESC LIMIT 1) p
            """);
        cmd.Parameters.AddWithValue("runs", runIds);
        var train = new Dictionary<long, MetricValue>();
        var validation = runIds.ToDictionary(id => id, _ => new SortedDictionary<string, MetricValue>(StringComparer.Ordinal));
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
            {
                var (run, name, value) = (r.GetInt64(0), r.GetString(1), new MetricValue(r.GetInt64(2), r.GetInt64(3), r.GetDouble(4)));
                if (name == "train/loss") train[run] = value; else validation[run][name] = value;
            }
        return runIds.Select(id => new RunLatest(id, train.GetValueOrDefault(id), validation[id])).ToList();
    }

    public static async Task<IReadOnlyList<MetricValue>> SeriesAsync(NpgsqlDataSource db, long runId, string name, long? fromStep, long? toStep, int maxPoints, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        var first = await Edge(conn, runId, name, fromStep ?? long.MinValue, toStep ?? long.MaxValue, "ASC", ct);
        if (first is null) return [];
        var last = (await Edge(conn, runId, name, fromStep ?? long.MinValue, toStep ?? long.MaxValue, "DESC", ct))!;
        var span = last.Step - first.Step + 1;   // an upper bound on the points in range (steps are unique)
        if (span <= maxPoints) return await Query(conn, """
            SELECT "Step", "Tokens", "Value" FROM hc.metric_points
            WHERE "RunId" = @run AND "Name" = @name AND "Step" BETWEEN @lo AND @hi ORDER BY "Step"
            """, runId, name, first.Step, last.Step, 0, ct);

        var buckets = maxPoints - 2;
        var inner = span <= (long)ExactFactor * maxPoints
            ? await Query(conn, """
                SELECT round(avg("Step"))::bigint, round(avg("Tokens"))::bigint, avg("Value") FROM hc.metric_points
                WHERE "RunId" = @run AND "Name" = @name AND "Step" > @lo AND "Step" < @hi
                GROUP BY ("Step" - @lo - 1) * @buckets / (@hi - @lo - 1) ORDER BY 1
                """, runId, name, first.Step, last.Step, buckets, ct)
            : await Query(conn, $"""
                SELECT p.step, p.tokens, p.value FROM generate_series(0, @buckets - 1) AS b(i)
                CROSS JOIN LATERAL (
                    SELECT round(avg(s."Step"))::bigint AS step, round(avg(s."Tokens"))::bigint AS tokens, avg(s."Value") AS value FROM (
                        SELECT "Step", "Tokens", "Value" FROM hc.metric_points
                        WHERE "RunId" = @run AND "Name" = @name
                          AND "Step" >= @lo + 1 + b.i * (@hi - @lo - 1) / @buckets AND "Step" < @lo + 1 + (b.i + 1) * (@hi - @lo - 1) / @buckets
                        ORDER BY "Step" LIMIT {ProbePoints}) AS s) AS p
                WHERE p.step IS NOT NULL ORDER BY p.step
                """, runId, name, first.Step, last.Step, buckets, ct);
        return [first, .. inner, last];
    }

    static async Task<MetricValue?> Edge(NpgsqlConnection conn, long runId, string name, long from, long to, string order, CancellationToken ct)
    {
        var rows = await Query(conn, $"""
            SELECT "Step", "Tokens", "Value" FROM hc.metric_points
            WHERE "RunId" = @run AND "Name" = @name AND "Step" BETWEEN @lo AND @hi ORDER BY "Step" {order} LIMIT 1
            """, runId, name, from, to, 0, ct);
        return rows.Count > 0 ? rows[0] : null;
    }

    static async Task<List<MetricValue>> Query(NpgsqlConnection conn, string sql, long runId, string name, long lo, long hi, int buckets, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        cmd.Parameters.AddWithValue("run", runId);
        cmd.Parameters.AddWithValue("name", name);
        cmd.Parameters.AddWithValue("lo", lo);
        cmd.Parameters.AddWithValue("hi", hi);
        cmd.Parameters.AddWithValue("buckets", (long)buckets);
        var points = new List<MetricValue>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) points.Add(new MetricValue(r.GetInt64(0), r.GetInt64(1), r.GetDouble(2)));
        return points;
    }
}
