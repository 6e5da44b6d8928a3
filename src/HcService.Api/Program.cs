using HcService.Api;

var app = ApiApp.Build(args);
if (app.Configuration.GetValue("Hc:Migrate", true)) await ApiApp.MigrateAsync(app.Services);
app.Run();
