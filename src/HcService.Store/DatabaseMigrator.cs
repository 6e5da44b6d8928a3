using HcService.Store.Runs;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace HcService.Store;

/// <summary>
/// Brings a database to the current schema, on a new installation, on every restart and on every upgrade: first moves
/// a migrations history that earlier versions left in schema <c>public</c> into schema <c>hc</c> (see
/// <see cref="HcDbContextOptions.UseHcNpgsql"/>), then applies the migrations that are missing. Safe when several
/// API processes start at once: the repair runs under an advisory lock and EF Core takes its own migration lock.
/// </summary>
public static class DatabaseMigrator
{
    public static async Task MigrateAsync(HcDbContext db, CancellationToken ct = default)
    {
        await RepairHistoryAsync(db.Database.GetConnectionString()!, db.Database.GetMigrations().ToList(), ct);
        await db.Database.MigrateAsync(ct);
    }

    /// <summary>
    /// Versions before the history table was pinned to schema <c>hc</c> wrote it to <c>public</c> on the first start and,
    /// on the second, created an empty one in <c>hc</c> and failed re-applying the first migration. Both states are
    /// repaired the same way: the rows of <c>public</c>'s history that name this service's migrations
    /// (<paramref name="ourMigrations"/>) move into <c>hc</c>'s (created like it when missing), and <c>public</c>'s is
    /// dropped once empty. Only when schema <c>hc</c> holds the service's tables; the rows of another application that
    /// shares the database stay where they are. Returns how many history rows were moved.
    /// </summary>
    public static async Task<int> RepairHistoryAsync(string connectionString, IReadOnlyCollection<string> ourMigrations, CancellationToken ct = default)
    {
        var history = $"\"{HcDbContextOptions.HistoryTable}\"";
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using var cmd = new NpgsqlCommand($"""
            SELECT pg_advisory_xact_lock(hashtext('hc.migrations-history-repair'));
            SELECT to_regclass('public.{history}') IS NOT NULL AND to_regclass('{HcDbContext.Schema}.runs') IS NOT NULL;
            """, conn, tx);
        bool broken;
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            await reader.NextResultAsync(ct);
            await reader.ReadAsync(ct);
            broken = reader.GetBoolean(0);
        }
        if (!broken) return 0;
        await using var move = new NpgsqlCommand($"""
            CREATE TABLE IF NOT EXISTS {HcDbContext.Schema}.{history} (LIKE public.{history} INCLUDING ALL);
            WITH ours AS (DELETE FROM public.{history} WHERE "MigrationId" = ANY(@ours) RETURNING *)
            INSERT INTO {HcDbContext.Schema}.{history} SELECT * FROM ours ON CONFLICT DO NOTHING;
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM public.{history}) THEN DROP TABLE public.{history}; END IF;
            END $$;
            """, conn, tx);
        move.Parameters.AddWithValue("ours", ourMigrations.ToArray());
        var moved = await move.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
        return moved;
    }
}
