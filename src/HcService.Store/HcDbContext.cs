using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace HcService.Store;

public sealed class HcDbContext(DbContextOptions<HcDbContext> options) : DbContext(options)
{
    public DbSet<Run> Runs => Set<Run>();
    public DbSet<MetricPoint> Metrics => Set<MetricPoint>();
    public DbSet<CheckpointEntry> Checkpoints => Set<CheckpointEntry>();
    public DbSet<EvaluationResult> Evaluations => Set<EvaluationResult>();

    protected override void OnModelCreating(ModelBuilder b)
    {
        b.HasDefaultSchema("hc");
        b.Entity<Run>(e =>
        {
            e.ToTable("runs");
            e.Property(r => r.Spec).HasColumnType("jsonb");
            e.Property(r => r.Name).HasMaxLength(200);
            e.Property(r => r.Status).HasMaxLength(16);
            e.Property(r => r.IdempotencyKey).HasMaxLength(200);
            e.HasIndex(r => r.IdempotencyKey).IsUnique();
            e.HasIndex(r => new { r.Status, r.CreatedAt });
            e.HasIndex(r => r.CreatedAt);
        });
        b.Entity<MetricPoint>(e =>
        {
            e.ToTable("metric_points");
            e.HasKey(m => new { m.RunId, m.Name, m.Step });
            e.Property(m => m.Name).HasMaxLength(200);
            e.HasOne<Run>().WithMany().HasForeignKey(m => m.RunId).OnDelete(DeleteBehavior.Cascade);
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
        new DbContextOptionsBuilder<HcDbContext>().UseNpgsql(connectionString).Options;
}

/// <summary>For `dotnet ef migrations add`: a context without a live database.</summary>
public sealed class DesignTimeFactory : IDesignTimeDbContextFactory<HcDbContext>
{
    public HcDbContext CreateDbContext(string[] args) => new(HcDbContext.Options("Host=localhost;Database=hc"));
}
