using HcService.Store.Runs;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace HcService.Store;

public sealed class HcDbContext(DbContextOptions<HcDbContext> options) : DbContext(options)
{
    /// <summary>The schema of the service's tables and of their migrations history.</summary>
    public const string Schema = "hc";

    public DbSet<Run> Runs => Set<Run>();
    public DbSet<MetricPoint> Metrics => Set<MetricPoint>();
    public DbSet<CheckpointEntry> Checkpoints => Set<CheckpointEntry>();
    public DbSet<EvaluationResult> Evaluations => Set<EvaluationResult>();
    public DbSet<RunAttempt> Attempts => Set<RunAttempt>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<EvaluationJob> EvaluationJobs => Set<EvaluationJob>();
    public DbSet<RunEvent> RunEvents => Set<RunEvent>();
    public DbSet<RunGroup> Groups => Set<RunGroup>();

    /// <summary>The sequence of <see cref="MetricPoint.Seq"/>.</summary>
    public const string MetricPointSequence = "metric_point_seq";

    protected override void OnModelCreating(ModelBuilder b)
    {
        b.HasDefaultSchema(Schema);
        b.Entity<Run>(e =>
        {
            e.ToTable("runs");
            e.Property(r => r.Spec).HasColumnType("jsonb");
            e.Property(r => r.Plan).HasColumnType("jsonb");
            e.Property(r => r.Name).HasMaxLength(200);
            e.Property(r => r.Status).HasMaxLength(16);
            e.Property(r => r.IdempotencyKey).HasMaxLength(200);
            e.Property(r => r.IdempotencyOwner).HasMaxLength(40);
            e.Property(r => r.IdempotencyRequestSha256).HasMaxLength(64);
            e.HasIndex(r => new { r.IdempotencyOwner, r.IdempotencyKey }).IsUnique();
            e.HasIndex(r => new { r.Status, r.CreatedAt });
            e.HasIndex(r => r.CreatedAt);
            e.Property(r => r.LeaseOwner).HasMaxLength(200);
            // The reaper's scan: running runs by lease expiry.
            e.HasIndex(r => new { r.Status, r.LeaseExpiresAt });
            e.Property(r => r.Group).HasMaxLength(60);
            e.HasIndex(r => r.Group);
            e.HasOne<RunGroup>().WithMany().HasForeignKey(r => r.Group).OnDelete(DeleteBehavior.Restrict);
        });
        b.Entity<RunGroup>(e =>
        {
            e.ToTable("groups");
            e.HasKey(g => g.Name);
            e.Property(g => g.Name).HasMaxLength(60);
        });
        b.Entity<RunAttempt>(e =>
        {
            e.ToTable("run_attempts");
            e.HasKey(a => new { a.RunId, a.Attempt });
            e.Property(a => a.Worker).HasMaxLength(200);
            e.Property(a => a.Outcome).HasMaxLength(16);
            e.HasOne<Run>().WithMany().HasForeignKey(a => a.RunId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<EvaluationJob>(e =>
        {
            e.ToTable("evaluation_jobs");
            e.Property(j => j.Request).HasColumnType("jsonb");
            e.Property(j => j.Status).HasMaxLength(16);
            e.Property(j => j.Worker).HasMaxLength(200);
            e.HasIndex(j => j.RunId);
            e.HasOne<Run>().WithMany().HasForeignKey(j => j.RunId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ApiKey>(e =>
        {
            e.ToTable("api_keys");
            e.Property(k => k.Name).HasMaxLength(200);
            e.Property(k => k.Prefix).HasMaxLength(16);
            e.Property(k => k.Hash).HasMaxLength(64);
            e.Property(k => k.Scope).HasMaxLength(16);
            e.HasIndex(k => k.Hash).IsUnique();
        });
        b.Entity<MetricPoint>(e =>
        {
            e.ToTable("metric_points");
            e.HasKey(m => new { m.RunId, m.Name, m.Step });
            e.Property(m => m.Name).HasMaxLength(200);
            e.Property(m => m.Seq).HasDefaultValueSql($"nextval('{Schema}.{MetricPointSequence}')");
            e.HasIndex(m => new { m.RunId, m.Seq });
            e.HasOne<Run>().WithMany().HasForeignKey(m => m.RunId).OnDelete(DeleteBehavior.Cascade);
        });
        b.HasSequence<long>(MetricPointSequence, Schema);
        b.Entity<RunEvent>(e =>
        {
            e.ToTable("run_events");
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.Previous).HasMaxLength(16);
            e.Property(x => x.Time).HasDefaultValueSql("now()");
            e.HasIndex(x => new { x.RunId, x.Id });
            e.HasOne<Run>().WithMany().HasForeignKey(x => x.RunId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<CheckpointEntry>(e =>
        {
            e.ToTable("checkpoints");
            e.HasKey(c => new { c.RunId, c.Step });
            e.HasOne<Run>().WithMany().HasForeignKey(c => c.RunId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<EvaluationResult>(e =>
        {
            e.ToTable("evaluation_results");
            e.HasKey(r => new { r.RunId, r.Step, r.Task, r.Metric });
            e.HasOne<Run>().WithMany().HasForeignKey(r => r.RunId).OnDelete(DeleteBehavior.Cascade);
        });
    }

    public static DbContextOptions<HcDbContext> Options(string connectionString) =>
        new DbContextOptionsBuilder<HcDbContext>().UseHcNpgsql(connectionString).Options;
}

public static class HcDbContextOptions
{
    /// <summary>Npgsql with the migrations history in schema <c>hc</c>, beside the tables it describes. Left unqualified,
    /// the history table lands wherever the search path points: in <c>public</c> on a new database (schema <c>hc</c>
    /// does not exist yet), in <c>hc</c> once it does (the user is called hc), so the second start found an empty history
    /// and applied the first migration again. <see cref="MigrationHistoryRepair"/> moves an old history here.</summary>
    public static DbContextOptionsBuilder UseHcNpgsql(this DbContextOptionsBuilder builder, string connectionString) =>
        builder.UseNpgsql(connectionString, o => o.MigrationsHistoryTable(HistoryTable, HcDbContext.Schema));

    public const string HistoryTable = "__EFMigrationsHistory";

    public static DbContextOptionsBuilder<T> UseHcNpgsql<T>(this DbContextOptionsBuilder<T> builder, string connectionString) where T : DbContext =>
        (DbContextOptionsBuilder<T>)((DbContextOptionsBuilder)builder).UseHcNpgsql(connectionString);
}

/// <summary>For `dotnet ef migrations add`: a context without a live database.</summary>
public sealed class DesignTimeFactory : IDesignTimeDbContextFactory<HcDbContext>
{
    public HcDbContext CreateDbContext(string[] args) => new(HcDbContext.Options("Host=localhost;Database=hc"));
}
