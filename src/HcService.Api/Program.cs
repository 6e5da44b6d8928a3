using HcService.Api;

var app = ApiApp.Build(args);
if (app.Configuration.GetValue("Hc:Migrate", true)) await ApiApp.MigrateAsync(app.Services);
// A new installation's first admin key, printed this once (only its hash is stored).
if (await HcService.Api.Auth.ApiKeys.BootstrapAsync(app.Services) is { } key) Console.WriteLine($"API key: {key}");
app.Run();
