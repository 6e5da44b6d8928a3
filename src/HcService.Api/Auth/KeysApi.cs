using HcService.Contract.Config;
using HcService.Store;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace HcService.Api.Auth;

/// <summary>A key in listings: never the key itself.</summary>
/// <param name="Id">The key's id (DELETE /api/keys/{id} revokes it).</param>
/// <param name="Name">Its name, for people.</param>
/// <param name="Prefix">Its first 10 characters, to recognise it.</param>
/// <param name="Scope">read, submit or admin (each includes the ones before it).</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="RevokedAt">When it was revoked; null while it works.</param>
public sealed record ApiKeyInfo(long Id, string Name, string Prefix, string Scope, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public static ApiKeyInfo Of(ApiKey k) => new(k.Id, k.Name, k.Prefix, k.Scope, k.CreatedAt, k.RevokedAt);
}

/// <summary>A new key, shown this once and stored only as its hash.</summary>
/// <param name="Id">The key's id.</param>
/// <param name="Name">Its name.</param>
/// <param name="Scope">read, submit or admin.</param>
/// <param name="Key">The key (hck_ and 43 characters): send it as Authorization: Bearer &lt;key&gt;. It cannot be shown again.</param>
public sealed record CreatedApiKey(long Id, string Name, string Scope, string Key);

/// <summary>POST /api/keys.</summary>
/// <param name="Name">A name for people, 1 to 200 characters.</param>
/// <param name="Scope">read (the read routes, where they need a key), submit (read, and every mutating route on runs,
/// evaluations and groups) or admin (submit, and /api/keys and the Hangfire dashboard).</param>
public sealed record CreateApiKeyRequest(string? Name, string? Scope);

/// <summary>/api/keys: list, create and revoke API keys (admin scope).</summary>
public static class KeysApi
{
    public static RouteGroupBuilder MapKeys(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/keys").WithTags("API keys").RequireScope(Scopes.Admin);
        g.MapGet("/", List).WithName("listKeys").WithSummary("API keys (name, prefix, scope, created, revoked); never the keys");
        g.MapPost("/", Create).WithName("createKey").WithSummary("Create a key with a scope: read, submit or admin. The key is in this response only");
        g.MapDelete("/{id:long}", Revoke).WithName("revokeKey").WithSummary("Revoke a key (effective within seconds)");
        return g;
    }

    static async Task<Ok<List<ApiKeyInfo>>> List(HcDbContext db, CancellationToken ct) =>
        TypedResults.Ok((await db.ApiKeys.AsNoTracking().OrderBy(k => k.Id).ToListAsync(ct)).Select(ApiKeyInfo.Of).ToList());

    static async Task<Results<Created<CreatedApiKey>, ValidationProblem>> Create(CreateApiKeyRequest request, HcDbContext db, CancellationToken ct)
    {
        var errors = new List<ConfigError>();
        if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > 200) errors.Add(new("name", request.Name, "a non-empty name of at most 200 characters"));
        if (!Scopes.All.Contains(request.Scope)) errors.Add(new("scope", request.Scope, "one of " + string.Join(", ", Scopes.All)));
        if (errors.Count > 0)
            return Problems.Invalid(errors, "The key request is invalid");
        var (entity, key) = await ApiKeys.CreateAsync(db, request.Name!.Trim(), request.Scope!, ct: ct);
        return TypedResults.Created($"/api/keys/{entity.Id}", new CreatedApiKey(entity.Id, entity.Name, entity.Scope, key));
    }

    /// <summary>Revokes a key, unless it is the last admin key (409): without one, nobody could manage keys again. The
    /// active admin keys are locked while this is decided, so two concurrent revocations cannot leave none.</summary>
    static async Task<Results<NoContent, NotFound<ProblemDetails>, Conflict<ProblemDetails>>> Revoke(long id, HcDbContext db, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var key = await db.ApiKeys.FirstOrDefaultAsync(k => k.Id == id, ct);
        if (key is null) return TypedResults.NotFound(new ProblemDetails { Title = "API key not found", Detail = $"there is no key {id}", Status = 404 });
        if (key.RevokedAt is null && key.Scope == Scopes.Admin)
        {
            var admins = await db.ApiKeys.FromSql($"""SELECT * FROM hc.api_keys WHERE "Scope" = 'admin' AND "RevokedAt" IS NULL FOR UPDATE""").Select(k => k.Id).ToListAsync(ct);
            if (admins.All(a => a == id))
                return TypedResults.Conflict(new ProblemDetails { Title = "The last admin key cannot be revoked", Status = 409,
                    Detail = $"key {id} is the only admin key left; create another admin key (POST /api/keys) before revoking this one" });
        }
        await db.ApiKeys.Where(k => k.Id == id).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, k => k.RevokedAt ?? DateTimeOffset.UtcNow), ct);
        await tx.CommitAsync(ct);
        return TypedResults.NoContent();
    }
}
