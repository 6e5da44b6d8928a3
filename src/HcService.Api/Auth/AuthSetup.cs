using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;

namespace HcService.Api.Auth;

/// <summary>
/// API keys on every door (docs/design.md section 3.2): mutating routes need a key with the submit scope, key management and
/// the Hangfire dashboard need admin, reads need a read key when HC_AUTH_READS_REQUIRE_KEY is true (default false: runs
/// and metrics are readable on the network the service is deployed to). HC_AUTH_ENABLED=false turns it all off
/// (a private laptop); it is on by default.
/// </summary>
public static class AuthSetup
{
    public sealed record AuthSettings(bool Enabled, bool ReadsRequireKey);

    public static AuthSettings AddHcAuth(this WebApplicationBuilder builder, HcService.Store.HcSettings hc)
    {
        var settings = new AuthSettings(hc.AuthEnabled, hc.ReadsRequireKey);
        builder.Services.AddSingleton(settings);
        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorization(o =>
        {
            foreach (var scope in Scopes.All)
                o.AddPolicy(scope, p => p.RequireAuthenticatedUser().RequireAssertion(c => !settings.Enabled || Scopes.Allows(c.User, scope)));
        });
        return settings;
    }

    /// <summary>Requires <paramref name="scope"/> on these endpoints (nothing when auth is off).</summary>
    public static TBuilder RequireScope<TBuilder>(this TBuilder endpoints, string scope) where TBuilder : IEndpointConventionBuilder
    {
        endpoints.Add(e =>
        {
            var settings = e.ApplicationServices.GetRequiredService<AuthSettings>();
            if (!settings.Enabled || (scope == Scopes.Read && !settings.ReadsRequireKey)) return;
            e.Metadata.Add(new AuthorizeAttribute(scope));
        });
        return endpoints;
    }
}
