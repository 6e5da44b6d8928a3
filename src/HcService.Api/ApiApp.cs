using Hangfire;
using HcService.Api.Runs;
using HcService.Store;
using HcService.Store.Jobs;
using Microsoft.EntityFrameworkCore;

namespace HcService.Api;

/// <summary>Builds the API application: used by this project's Program and by `hc up`, which hosts it in-process.</summary>
public static class ApiApp
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        configure?.Invoke(builder);
        var connectionString = builder.Configuration.GetConnectionString("hc")
            ?? throw new InvalidOperationException("ConnectionStrings:hc is not set (environment: ConnectionStrings__hc)");
        var paths = new HcPaths
        {
            DataRoot = Path.GetFullPath(builder.Configuration["Hc:DataRoot"] ?? Path.Combine(Environment.CurrentDirectory, "data", "datasets")),
            CheckpointRoot = Path.GetFullPath(builder.Configuration["Hc:CheckpointRoot"] ?? Path.Combine(Environment.CurrentDirectory, ".hc", "checkpoints")),
        };

        builder.Services.AddSingleton(paths);
        builder.Services.AddSingleton<SpecValidator>();
        builder.Services.AddDbContext<HcDbContext>(o => o.UseNpgsql(connectionString));
        builder.Services.AddHangfire(c => c.UseHcStorage(connectionString));
        builder.Services.AddProblemDetails();
        // A diverged run's loss is NaN: serialise it as "NaN" rather than failing the response.
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals);
        builder.Services.AddEndpointsApiExplorer();
        builder.Services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc("v1", new() { Title = "HcService API", Version = "v1", Description = "Pre-training runs comparing residual connections with hyper-connections." });
            var xml = Path.Combine(AppContext.BaseDirectory, "HcService.Api.xml");
            if (File.Exists(xml)) o.IncludeXmlComments(xml);
            o.OperationFilter<JobSpecExample>();
        });
        builder.Services.AddHealthChecks().AddCheck<PostgresHealthCheck>("postgres");
        builder.WebHost.ConfigureKestrel(o => o.Limits.MaxRequestBodySize = 1 << 20);

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseSwagger();
        app.UseSwaggerUI(o => o.RoutePrefix = "swagger");
        app.UseHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [], DisplayStorageConnectionString = false, IsReadOnlyFunc = _ => true });
        app.MapHealthChecks("/healthz", new() { Predicate = _ => false });
        app.MapHealthChecks("/readyz");
        app.MapRuns();
        app.MapCatalog();
        return app;
    }

    /// <summary>The API on a loopback URL for a given database and folders (`hc up`, the service tests).</summary>
    public static WebApplication BuildLocal(string connectionString, string dataRoot, string checkpointRoot, string url) => Build([], b =>
    {
        b.Configuration["ConnectionStrings:hc"] = connectionString;
        b.Configuration["Hc:DataRoot"] = dataRoot;
        b.Configuration["Hc:CheckpointRoot"] = checkpointRoot;
        b.Configuration["Logging:LogLevel:Default"] = "Warning";
        // EF logs the first migration-history query on a new database as an error; failures still surface as exceptions.
        b.Configuration["Logging:LogLevel:Microsoft.EntityFrameworkCore.Database.Command"] = "Critical";
        b.WebHost.UseUrls(url);
    });

    /// <summary>Applies the EF Core migrations (the service and `hc up` do this at start-up).</summary>
    public static async Task MigrateAsync(IServiceProvider services)
    {
        using var scope = services.CreateScope();
        await scope.ServiceProvider.GetRequiredService<HcDbContext>().Database.MigrateAsync();
    }
}
