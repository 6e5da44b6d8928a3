using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HcService.Store;
using HcService.Store.Runs;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>
/// An installation of the first release, upgraded: a database at the first migration, built the way that release built it
/// (the migrations history where the search path pointed: schema public), holding a finished run with metrics, a
/// checkpoint record and an evaluation. The current `hc up` on it repairs the history, applies every later migration,
/// serves the old run as it was, runs a new one to success, and starts again on the upgraded database.
/// </summary>
[Collection("service")]
public class UpgradeTests
{
    const string FirstMigration = "20261129093344_Initial";

    [Theory]
    [InlineData(false, false)]   // as the first release left it after its first start
    [InlineData(true, false)]    // after that release's failed second start: an empty history in schema hc as well
    [InlineData(false, true)]    // in a database shared with another EF Core application, whose history is in public too
    public async Task ADatabaseOfTheFirstReleaseIsRepairedMigratedAndServedByTheCurrentService(bool failedSecondStart, bool sharedDatabase)
    {
        var home = RepoPaths.TempDir("upgrade");
        var postgres = new EmbeddedPostgres(Path.Combine(home, "postgres"));
        await postgres.StartAsync();
        await using (var old = new HcDbContext(new DbContextOptionsBuilder<HcDbContext>().UseNpgsql(postgres.ConnectionString).Options))
            await old.GetService<IMigrator>().MigrateAsync(FirstMigration);
        await using (var db = NpgsqlDataSource.Create(postgres.ConnectionString))
        {
            await using var cmd = db.CreateCommand("""
                INSERT INTO hc.runs ("Id", "Name", "Spec", "Preset", "Architecture", "Connection", "Rate", "Tags", "Status", "Queue", "Attempt",
                    "TotalSteps", "TokenBudget", "Step", "Tokens", "CancelRequested", "CreatedAt", "StartedAt", "FinishedAt", "UpdatedAt")
                VALUES (1, 'first-release', @spec::jsonb, 'tiny', 'dense', 'residual', 1, '{old,group:legacy-grid}', 'succeeded',
                    'cpu', 1, 50, 51200, 50, 51200, false, now(), now(), now(), now());
                INSERT INTO hc.metric_points ("RunId", "Name", "Step", "Tokens", "Value", "Time")
                    SELECT 1, 'train/loss', s, s * 1024, 6.0 - s * 0.01, now() FROM generate_series(1, 50) s;
                INSERT INTO hc.checkpoints ("RunId", "Step", "Tokens", "Bytes", "Sha256", "Location", "CreatedAt")
                    VALUES (1, 50, 51200, 1234, repeat('ab', 32), 'run-1/checkpoints/ckpt-000000050.hcckpt', now());
                INSERT INTO hc.evaluation_results ("RunId", "Step", "Task", "Metric", "Value", "CreatedAt") VALUES (1, 50, 'arc_easy', 'acc', 0.25, now());
                SELECT setval(pg_get_serial_sequence('hc.runs', 'Id'), 1);
                """);
            cmd.Parameters.AddWithValue("spec", UpProcess.Quick.Replace("NAME", "first-release"));
            await cmd.ExecuteNonQueryAsync();
            if (failedSecondStart)
            {
                await using var empty = db.CreateCommand("""CREATE TABLE hc."__EFMigrationsHistory" (LIKE public."__EFMigrationsHistory" INCLUDING ALL)""");
                await empty.ExecuteNonQueryAsync();
            }
            if (sharedDatabase)
            {
                await using var other = db.CreateCommand("""INSERT INTO public."__EFMigrationsHistory" VALUES ('20240101000000_OtherAppInitial', '8.0.0')""");
                await other.ExecuteNonQueryAsync();
            }
        }
        await postgres.StopAsync();

        for (var start = 1; start <= 2; start++)   // the upgrade, then a plain restart on the upgraded database
        {
            await using var up = await UpProcess.StartAsync(home);
            var run = await up.Run(1);
            Assert.Equal("succeeded", run["run"]!["status"]!.GetValue<string>());
            Assert.Equal("first-release", run["run"]!["name"]!.GetValue<string>());
            Assert.Equal(5.5, run["latestMetrics"]!["train/loss"]!["value"]!.GetValue<double>(), 9);
            Assert.Equal(Enumerable.Range(1, 50).Select(s => (long)s), await up.LossSteps(1));
            Assert.Equal(50, (await up.Http.GetFromJsonAsync<JsonArray>("api/runs/1/checkpoints"))!.Single()!["step"]!.GetValue<long>());
            Assert.Equal(0.25, (await up.Http.GetFromJsonAsync<JsonArray>("api/runs/1/evaluations"))!.Single()!["value"]!.GetValue<double>());
            // A group of the old release (its runs' group: tag) is a group now, with its run as member.
            var group = (await up.Http.GetFromJsonAsync<JsonNode>("api/groups/legacy-grid"))!;
            Assert.Equal(1, group["rows"]!.AsArray().Single()!["run"]!["id"]!.GetValue<long>());

            // One history, in schema hc, with every migration of this version.
            await using (var db = NpgsqlDataSource.Create(up.Database))
            {
                await using var cmd = db.CreateCommand("""
                    SELECT (SELECT count(*) FROM hc."__EFMigrationsHistory"), to_regclass('public."__EFMigrationsHistory"') IS NULL,
                        (SELECT string_agg("MigrationId", ',') FROM hc."__EFMigrationsHistory" WHERE "MigrationId" LIKE '%OtherApp%')
                    """);
                await using var reader = await cmd.ExecuteReaderAsync();
                await reader.ReadAsync();
                await using var current = new HcDbContext(HcDbContext.Options(up.Database));
                Assert.Equal(current.Database.GetMigrations().Count(), reader.GetInt64(0));
                Assert.True(reader.IsDBNull(2), "another application's history row was moved into schema hc");
                if (!sharedDatabase) Assert.True(reader.GetBoolean(1), "the old history table in schema public is still there");
                else
                {
                    // The other application's history stays where it was, with its row.
                    Assert.False(reader.GetBoolean(1), "the other application's history table was dropped");
                    await reader.DisposeAsync();
                    await using var theirs = db.CreateCommand("""SELECT string_agg("MigrationId", ',') FROM public."__EFMigrationsHistory" """);
                    Assert.Equal("20240101000000_OtherAppInitial", await theirs.ExecuteScalarAsync());
                }
            }

            // The run of the old release has its history as one event (its state when upgraded) and its points in order.
            var old = await SseReader.Read(up.Http, "api/runs/1/events");
            Assert.Equal(["succeeded"], old.Where(e => e.Kind == "status").Select(e => e.Status));
            Assert.Equal(Enumerable.Range(1, 50).Select(s => (long)s), old.Where(e => e.Kind == "metric").Select(e => e.Point.Step));

            var fresh = await up.Submit(UpProcess.Quick, $"after-upgrade-{start}");
            Assert.Equal("succeeded", await up.WaitForEnd(fresh));
            up.Process.Signal(15);
            Assert.Equal(0, await up.Process.WaitForExit(TimeSpan.FromMinutes(2)));
            Assert.DoesNotContain("Unhandled exception", up.Process.Output);
        }
    }
}
