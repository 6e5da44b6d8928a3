using HcService.Store.Runs;
using Hangfire;
using Hangfire.PostgreSql;

namespace HcService.Store.Jobs;

public static class HangfireStorage
{
    /// <summary>Hangfire on the same PostgreSQL database, in its own schema. The queue is polled every 500 ms so that
    /// an idle worker picks a queued run up well within 2 s (the default is 15 s). The invisibility timeout slides: a
    /// server keeps its fetched job invisible by heartbeat, so a long run is never dispatched twice while its worker
    /// lives, and a dead server's job becomes visible again after 5 minutes (by then the run's lease has long expired
    /// and the reaper has requeued it; the stale job finds the run not queued and does nothing).</summary>
    public static IGlobalConfiguration UseHcStorage(this IGlobalConfiguration c, string connectionString) => c
        .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
        .UseSimpleAssemblyNameTypeSerializer()
        .UseRecommendedSerializerSettings()
        .UsePostgreSqlStorage(o => o.UseNpgsqlConnection(connectionString), new PostgreSqlStorageOptions
        {
            SchemaName = "hangfire",
            QueuePollInterval = TimeSpan.FromMilliseconds(500),
            PrepareSchemaIfNecessary = true,
            UseSlidingInvisibilityTimeout = true,
            InvisibilityTimeout = TimeSpan.FromMinutes(5),
        });
}
