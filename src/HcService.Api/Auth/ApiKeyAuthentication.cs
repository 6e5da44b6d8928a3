using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using HcService.Store;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace HcService.Api.Auth;

/// <summary>Key scopes, each including the ones before it: read &lt; submit &lt; admin.</summary>
public static class Scopes
{
    public const string Read = "read";
    public const string Submit = "submit";
    public const string Admin = "admin";
    public static readonly string[] All = [Read, Submit, Admin];

    public static int Level(string? scope) => Array.IndexOf(All, scope);
    public static bool Allows(ClaimsPrincipal user, string needed) => Level(user.FindFirstValue("scope")) >= Level(needed);
}

/// <summary>API keys: created here, stored as SHA-256 only. A key is 32 random bytes (base64url) after "hck_", so an
/// unsalted hash is safe and lookups are one index probe.</summary>
public static class ApiKeys
{
    public static string NewKey() => "hck_" + Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>The id of the key that authenticated the request; null when keys are turned off.</summary>
    public static long? CallerId(ClaimsPrincipal user) =>
        long.TryParse(user.FindFirstValue("key_id"), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) ? id : null;
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Stores a new key and returns it (the only time it is seen).</summary>
    public static async Task<(ApiKey Entity, string Key)> CreateAsync(HcDbContext db, string name, string scope, string? key = null, CancellationToken ct = default)
    {
        key ??= NewKey();
        var entity = new ApiKey { Name = name, Prefix = key[..Math.Min(10, key.Length)], Hash = Hash(key), Scope = scope, CreatedAt = DateTimeOffset.UtcNow };
        db.ApiKeys.Add(entity);
        await db.SaveChangesAsync(ct);
        return (entity, key);
    }

    /// <summary>
    /// The first admin key of a new installation: when no key exists, one is created and returned (to be printed once);
    /// $HC_BOOTSTRAP_API_KEY, when set, is used as that key (deployments that inject a secret). Null when keys exist.
    /// </summary>
    public static async Task<string?> BootstrapAsync(IServiceProvider services, CancellationToken ct = default)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<HcDbContext>();
        if (await db.ApiKeys.AnyAsync(ct)) return null;
        var preset = Environment.GetEnvironmentVariable("HC_BOOTSTRAP_API_KEY") is { Length: >= 16 } k ? k : null;
        return (await CreateAsync(db, "bootstrap admin", Scopes.Admin, preset, ct)).Key;
    }
}

/// <summary>
/// Authenticates `Authorization: Bearer &lt;key&gt;` (and HTTP Basic with the key as the password, so that a browser can
/// open the Hangfire dashboard). Keys are looked up by hash, cached for a few seconds; a revoked key stops working
/// within that time. No header: anonymous (routes that need a scope then answer 401); a wrong key: 401.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(5);
    static readonly ConcurrentDictionary<string, (ApiKey? Key, DateTime Until)> Cache = new();

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (PresentedKey(Request.Headers.Authorization.ToString(), basicAllowed: Dashboard) is not { } presented) return AuthenticateResult.NoResult();
        var hash = ApiKeys.Hash(presented);
        if (!Cache.TryGetValue(hash, out var cached) || cached.Until < DateTime.UtcNow)
        {
            var db = Context.RequestServices.GetRequiredService<HcDbContext>();
            var key = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Hash == hash, Context.RequestAborted);
            cached = (key, DateTime.UtcNow + CacheFor);
            if (Cache.Count > 10_000) Cache.Clear();
            Cache[hash] = cached;
        }
        if (cached.Key is not { } found) return AuthenticateResult.Fail("the API key is not known here (check for a typo or a key of another installation)");
        if (found.RevokedAt is { } revoked)
            return AuthenticateResult.Fail($"the API key '{found.Name}' ({found.Prefix}...) was revoked at {revoked.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC; ask an admin for a new one");
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, found.Name), new Claim("scope", found.Scope), new Claim("key_id", found.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))], SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    /// <summary>Basic credentials are taken on the dashboard only: a browser that logged in there sends them to the whole
    /// origin, and a hostile page could then make it POST to the API (a bearer token is never sent by itself).</summary>
    bool Dashboard => Request.Path.StartsWithSegments("/hangfire");

    static string? PresentedKey(string header, bool basicAllowed)
    {
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return header[7..].Trim() is { Length: > 0 } k ? k : null;
        if (!basicAllowed || !header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return null;
        try
        {
            var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            return pair.IndexOf(':') is var colon and >= 0 && pair[(colon + 1)..] is { Length: > 0 } password ? password : null;
        }
        catch (FormatException) { return null; }
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = 401;
        Response.Headers.WWWAuthenticate = Dashboard ? "Basic realm=\"HcService\"" : "Bearer realm=\"HcService\"";
        // A key that was sent and refused says why (unknown, revoked); no key asks for one.
        var refused = (await HandleAuthenticateOnceSafeAsync()).Failure?.Message;
        await Response.WriteAsJsonAsync(refused is null
            ? new { title = "An API key is required", status = 401, detail = "send Authorization: Bearer <key> (a key with the needed scope: read, submit or admin)" }
            : new { title = "The API key was refused", status = 401, detail = refused });
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = 403;
        return Response.WriteAsJsonAsync(new { title = "The API key lacks the scope this route needs", status = 403,
            detail = $"this key's scope is '{Context.User.FindFirstValue("scope")}'" });
    }
}
