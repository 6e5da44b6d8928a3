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
/// within that time. No header: anonymous (routes that need a scope then answer 401). A route that needs a key answers
/// 401 saying which of three things is wrong: no key was sent, what was sent is malformed (not a Bearer key, or not of
/// the hck_ form and no key here), or the key is unknown or revoked. Nothing in these answers says whether some other
/// key exists; a revoked key's holder is told when it was revoked.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(5);
    static readonly ConcurrentDictionary<string, (ApiKey? Key, DateTime Until)> Cache = new();

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (header.Length == 0) return AuthenticateResult.NoResult();
        if (PresentedKey(header, basicAllowed: Dashboard) is not { } presented) return Refused(Malformed, MalformedHeader(header));
        var hash = ApiKeys.Hash(presented);
        if (!Cache.TryGetValue(hash, out var cached) || cached.Until < DateTime.UtcNow)
        {
            var db = Context.RequestServices.GetRequiredService<HcDbContext>();
            var key = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Hash == hash, Context.RequestAborted);
            cached = (key, DateTime.UtcNow + CacheFor);
            if (Cache.Count > 10_000) Cache.Clear();
            Cache[hash] = cached;
        }
        // A key stored here is taken whatever its form (HC_BOOTSTRAP_API_KEY may be any secret of 16+ characters); one
        // that is not is malformed when it is not of the form this service issues, else unknown.
        if (cached.Key is not { } found)
            return WellFormed(presented)
                ? Refused(UnknownOrRevoked, "the API key is not known here or was revoked (check for a typo or a key of another installation; an admin can create a new one)")
                : Refused(Malformed, $"the API key is not of the form this service issues (hck_ followed by 43 letters, digits, '-' or '_'; this one has {presented.Length} characters{(presented.StartsWith("hck_", StringComparison.Ordinal) ? "" : " and does not start with hck_")}) and matches no key here");
        if (found.RevokedAt is { } revoked)
            return Refused(UnknownOrRevoked, $"the API key '{found.Name}' ({found.Prefix}...) was revoked at {revoked.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC; ask an admin for a new one");
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, found.Name), new Claim("scope", found.Scope), new Claim("key_id", found.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))], SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    const string Malformed = "The API key is malformed";
    const string UnknownOrRevoked = "The API key is unknown or revoked";

    /// <summary>A refusal whose title (<see cref="Malformed"/>, <see cref="UnknownOrRevoked"/>) and detail the 401 shows.</summary>
    static AuthenticateResult Refused(string title, string detail) => AuthenticateResult.Fail(new KeyRefused(title, detail));

    sealed class KeyRefused(string title, string detail) : Exception(detail)
    {
        public string Title { get; } = title;
    }

    /// <summary>The form <see cref="ApiKeys.NewKey"/> gives: "hck_" and 32 bytes in base64url (43 characters).</summary>
    static bool WellFormed(string key) => key.Length == 47 && key.StartsWith("hck_", StringComparison.Ordinal)
        && key.AsSpan(4).IndexOfAnyExcept("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") < 0;

    /// <summary>Why an Authorization header holds no key, naming its scheme only (never echoing a credential).</summary>
    string MalformedHeader(string header)
    {
        var scheme = header.Split(' ', 2)[0];
        if (scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase)) return "the Authorization header says Bearer but holds no key: send Authorization: Bearer <key>";
        if (scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
            return Dashboard ? "the Basic credentials hold no key: log in with any user name and the API key as the password"
                : "Basic credentials are taken on /hangfire only: send Authorization: Bearer <key>";
        return $"the Authorization header's scheme is not Bearer: send Authorization: Bearer <key> (got a header of {header.Length} characters)";
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
        // A key that was sent and refused says why (malformed, unknown or revoked); no key asks for one.
        var (title, detail) = (await HandleAuthenticateOnceSafeAsync()).Failure is KeyRefused refused ? (refused.Title, refused.Message)
            : ("An API key is required", "no API key was sent: send Authorization: Bearer <key> (a key with the needed scope: read, submit or admin; `hc up` prints the first one)");
        await Response.WriteAsJsonAsync(new { title, status = 401, detail }, (System.Text.Json.JsonSerializerOptions?)null, "application/problem+json");
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = 403;
        return Response.WriteAsJsonAsync(new { title = "The API key lacks the scope this route needs", status = 403,
            detail = $"this key's scope is '{Context.User.FindFirstValue("scope")}'" }, (System.Text.Json.JsonSerializerOptions?)null, "application/problem+json");
    }
}
