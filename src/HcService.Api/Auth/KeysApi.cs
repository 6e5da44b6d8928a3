using HcService.Core.Config;
using HcService.Store;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace HcService.Api.Auth;

/// <summary>A key in listings: never the key itself.</summary>
public sealed record ApiKeyInfo(long Id, string Name, string Prefix, string Scope, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public static ApiKeyInfo Of(ApiKey k) => new(k.Id, k.Name, k.Prefix, k.Scope, k.CreatedAt, k.RevokedAt);
}

/// <summary>A new key: <see cref="Key"/> is shown this once and stored only as its hash.</summary>
public sealed record CreatedApiKey(long Id, string Name, string Scope, string Key);

public sealed record CreateApiKeyRequest(string? Name, string? Scope);

/// <summary>/api/keys: list, create and revoke API keys (admin scope).</summary>
public static class KeysApi
{
    public static RouteGroupBuilder MapKeys(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/keys").WithTags("API keys").RequireScope(Scopes.Admin);
        g.MapGet("/", List).WithSummary("API keys (name, prefix, scope, created, revoked); never the keys");
        g.MapPost("/", Create).WithSummary("Create a key with a scope: read, submit or admin. The key is in this response only");
        g.MapDelete("/{id:long}", Revoke).WithSummary("Revoke a key (effective within seconds)");
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

    static async Task<Results<NoContent, NotFound<ProblemDetails>>> Revoke(long id, HcDbContext db, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var n = await db.ApiKeys.Where(k => k.Id == id).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, k => k.RevokedAt ?? now), ct);
        return n == 0 ? TypedResults.NotFound(new ProblemDetails { Title = "API key not found", Detail = $"there is no key {id}", Status = 404 }) : TypedResults.NoContent();
    }
}
