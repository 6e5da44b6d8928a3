using Hangfire;
using Hangfire.PostgreSql;

namespace HcService.Store.Jobs;

public static class HangfireStorage
{
    /// <summary>Hangfire on the same PostgreSQL database, in its own schema. The queue is polled every 500 ms so that
    /// an idle worker picks a queued run up well within 2 s (the default is 15 s).</summary>
    public static IGlobalConfiguration UseHcStorage(this IGlobalConfiguration c, string connectionString) => c
        .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
        .UseSimpleAssemblyNameTypeSerializer()
        .UseRecommendedSerializerSettings()
        .UsePostgreSqlStorage(o => o.UseNpgsqlConnection(connectionString), new PostgreSqlStorageOptions
        {
            SchemaName = "hangfire",
            QueuePollInterval = TimeSpan.FromMilliseconds(500),
            PrepareSchemaIfNecessary = true,
            InvisibilityTimeout = TimeSpan.FromHours(12),
        });
}
