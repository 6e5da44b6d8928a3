using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>The metric route's downsampling against by-hand numbers: a series short enough is returned whole; a longer
/// one as exact bucket means; a very long one by index probes. On a straight line every point lies on the line (each
/// bucket's point sits at its centre), and the first and last points are exact.</summary>
[Collection("service")]
public class MetricQueryTests(ServiceFixture svc)
{
    [Theory]
    [InlineData(50, 100)]      // whole
    [InlineData(400, 12)]      // exact bucket means (<= 16 x maxPoints)
    [InlineData(100_000, 50)]  // index probes
    public async Task DownsamplingKeepsTheEndsAndPutsEveryBucketOnTheLine(int points, int maxPoints)
    {
        await using var db = NpgsqlDataSource.Create(svc.Postgres.ConnectionString);
        long id;
        await using (var cmd = db.CreateCommand("""
            INSERT INTO hc.runs ("Name", "Spec", "Preset", "Architecture", "Connection", "Rate", "Tags", "Status", "Queue", "Attempt", "MaxAttempts",
                "TotalSteps", "TokenBudget", "Step", "Tokens", "CancelRequested", "CreatedAt", "UpdatedAt")
            VALUES ('series', '{}', 'tiny', 'dense', 'residual', 1, '{}', 'succeeded', 'test', 1, 1, 0, 0, 0, 0, false, now(), now()) RETURNING "Id"
            """))
            id = (long)(await cmd.ExecuteScalarAsync())!;
        await using (var cmd = db.CreateCommand("""
            INSERT INTO hc.metric_points ("RunId", "Name", "Step", "Tokens", "Value", "Time")
            SELECT @id, 'line', s, s * 10, 2.0 * s + 1, now() FROM generate_series(1, @n) AS s
            """))
        {
            cmd.Parameters.AddWithValue("id", id);
            cmd.Parameters.AddWithValue("n", points);
            await cmd.ExecuteNonQueryAsync();
        }

        var series = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/metrics?names=line&maxPoints={maxPoints}"))!;
        var got = series.Single()!["points"]!.AsArray().Select(p => (Step: p!["step"]!.GetValue<long>(), Tokens: p["tokens"]!.GetValue<long>(), Value: p["value"]!.GetValue<double>())).ToList();
        Assert.Equal(Math.Min(points, maxPoints), got.Count);
        Assert.Equal((1L, 10L, 3.0), got[0]);
        Assert.Equal(((long)points, points * 10L, 2.0 * points + 1), got[^1]);
        Assert.True(got.Zip(got.Skip(1)).All(p => p.First.Step < p.Second.Step), "steps are not increasing");
        foreach (var p in got)
        {
            Assert.InRange(p.Value, 2.0 * (p.Step - 0.5) + 1, 2.0 * (p.Step + 0.5) + 1);   // on the line, within rounding of the step
            Assert.Equal(p.Step * 10, p.Tokens, 10.0);
        }
    }
}
