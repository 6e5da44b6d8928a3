using Hangfire;
using HcService.Api.Auth;
using HcService.Api.Evaluations;
using HcService.Api.OpenApi;
using HcService.Api.Runs;
using HcService.Api.Telemetry;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Microsoft.EntityFrameworkCore;
using Npgsql;

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
        // Every setting read and validated now: a bad one stops the API here, naming it, its value and what is allowed.
        var settings = HcSettings.Load(key => builder.Configuration[key]);
        var paths = settings.Paths;

        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(paths);
        builder.Services.AddSingleton<SpecValidator>();
        builder.Services.AddSingleton<DeviceMemory>();
        builder.Services.AddSingleton<RunDurationCap>();
        builder.Services.AddDbContext<HcDbContext>(o => o.UseHcNpgsql(connectionString));
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        builder.Services.AddSingleton(settings.Leases);
        builder.Services.AddSingleton<RunLifecycle>();
        builder.Services.AddSingleton(sp => new LeaseReaper(sp.GetRequiredService<RunLifecycle>(),
            sp.GetRequiredService<IBackgroundJobClient>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("HcService.Leases").LogLeaseEvent));
        builder.Services.AddHostedService<LeaseReaperService>();
        builder.Services.AddSingleton<HcService.Api.Runs.RunEventHub>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<HcService.Api.Runs.RunEventHub>());
        builder.Services.AddHangfire(c => c.UseHcStorage(connectionString));
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<ErrorAnswers>();
        // A parameter that does not bind throws, so that ErrorAnswers answers 400 naming it (instead of a bare 400).
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        // A diverged run's loss is NaN: serialise it as "NaN" rather than failing the response.
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals;
            o.SerializerOptions.AllowDuplicateProperties = false;   // request bodies: a field given twice is refused (400)
        });
        builder.Services.AddHcOpenApi();
        var auth = builder.AddHcAuth(settings);
        builder.AddHcTelemetry("hc-api");
        builder.Services.AddSingleton<HcService.Api.Telemetry.ServiceGauges>();
        builder.Services.AddHealthChecks().AddCheck<PostgresHealthCheck>("postgres");
        builder.WebHost.ConfigureKestrel(o => o.Limits.MaxRequestBodySize = 1 << 20);

        var app = builder.Build();
        foreach (var warning in settings.Warnings) app.Logger.LogWarning("setting: {Warning}", warning);
        // Kestrel's own rejections (a body over the 1 MiB limit: 413, a malformed request: 400) keep their status.
        app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = e => e is BadHttpRequestException b ? b.StatusCode : 500 });
        app.UseStatusCodePages();
        app.UseMiddleware<ControlCharacterGuard>();
        // The web UI (wwwroot beside the assembly): the same origin and the same keys as the API, built on its public routes.
        var webRoot = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        if (Directory.Exists(webRoot))
        {
            var web = new Microsoft.Extensions.FileProviders.PhysicalFileProvider(webRoot);
            app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = web });
            // no-cache: a browser revalidates, so an upgraded API never runs against a stale app.js.
            app.UseStaticFiles(new StaticFileOptions { FileProvider = web, OnPrepareResponse = f => f.Context.Response.Headers.CacheControl = "no-cache" });
        }
        app.UseHcOpenApi();
        app.UseAuthentication();
        app.UseAuthorization();
        // The dashboard shows every job's arguments and the servers: admin keys only (a browser gets a Basic prompt:
        // any user name, the key as the password). Read-only: runs are managed through the API, not by editing jobs.
        var dashboard = new DashboardOptions { Authorization = [], AsyncAuthorization = [], DisplayStorageConnectionString = false, IsReadOnlyFunc = _ => true, AppPath = "/" };
        if (auth.Enabled) app.MapHangfireDashboardWithAuthorizationPolicy(Auth.Scopes.Admin, "/hangfire", dashboard);
        else app.MapHangfireDashboard("/hangfire", dashboard);
        app.MapHealthChecks("/healthz", new() { Predicate = _ => false });
        app.Services.GetRequiredService<HcService.Api.Telemetry.ServiceGauges>();   // registers the database-backed gauges
        app.MapPrometheusScrapingEndpoint();   // /metrics: open like the other reads (Prometheus scrapes it)
        app.MapHealthChecks("/readyz");
        app.MapRuns();
        app.MapCatalog();
        app.MapDatasets();
        app.MapKeys();
        app.MapEvaluations();
        app.MapComparisons();
        app.MapGroups();
        return app;
    }

    /// <summary>The API on a loopback URL for a given database and folders (`hc up`, the service tests).</summary>
    public static WebApplication BuildLocal(string connectionString, string dataRoot, string checkpointRoot, string url,
        Action<WebApplicationBuilder>? configure = null) => Build([], b =>
    {
        configure?.Invoke(b);
        b.Configuration["ConnectionStrings:hc"] = connectionString;
        b.Configuration[HcSettings.DataRootSetting.Name] = dataRoot;
        b.Configuration[HcSettings.CheckpointRootSetting.Name] = checkpointRoot;
        b.Configuration["Logging:LogLevel:Default"] = "Warning";
        // EF logs the first migration-history query on a new database as an error; failures still surface as exceptions.
        b.Configuration["Logging:LogLevel:Microsoft.EntityFrameworkCore.Database.Command"] = "Critical";
        b.WebHost.UseUrls(url);
    });

    /// <summary>Repairs an old migrations history and applies the missing migrations (the service and `hc up` do this at
    /// start-up, on a new or an existing database).</summary>
    public static async Task MigrateAsync(IServiceProvider services, CancellationToken ct = default)
    {
        using var scope = services.CreateScope();
        await DatabaseMigrator.MigrateAsync(scope.ServiceProvider.GetRequiredService<HcDbContext>(), ct);
    }

    static void LogLeaseEvent(this ILogger logger, string message) => logger.LogWarning("{Message}", message);
}
