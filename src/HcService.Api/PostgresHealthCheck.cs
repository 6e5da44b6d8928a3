using HcService.Store;
using HcService.Store.Runs;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HcService.Api;

/// <summary>/readyz: the API is ready when it can reach PostgreSQL.</summary>
sealed class PostgresHealthCheck(HcDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default) =>
        await db.Database.CanConnectAsync(ct) ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("PostgreSQL is unreachable");
}
