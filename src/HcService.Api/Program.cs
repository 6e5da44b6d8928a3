using HcService.Api;

using HcService.Contract.Config;
using HcService.Store;

WebApplication app;
try { app = ApiApp.Build(args); }
catch (ConfigException e)
{
    // A bad setting stops the API at start, naming the setting, its value and what is allowed.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
if (app.Services.GetRequiredService<HcSettings>().Migrate) await ApiApp.MigrateAsync(app.Services);
// A new installation's first admin key, printed this once (only its hash is stored).
if (await HcService.Api.Auth.ApiKeys.BootstrapAsync(app.Services) is { } key) Console.WriteLine($"API key: {key}");
app.Run();
return 0;
