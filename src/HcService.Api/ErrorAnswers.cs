using HcService.Store;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Npgsql;

namespace HcService.Api;

/// <summary>
/// What an exception becomes, so that a client gets a 4xx or a 503 it can act on and never a bare 500 for its own input
/// or for an outage: a request parameter that does not bind (maxPoints=NaN, page=99999999999, step=abc, a JSON body of
/// the wrong shape) is a 400 naming it; the database away (a restart, an outage, an exhausted pool) is a 503 with
/// Retry-After, which load balancers and clients retry; a value PostgreSQL cannot store (a NUL byte) is a 400.
/// Anything else is a 500 with no detail (it is logged).
/// </summary>
public sealed class ErrorAnswers(IProblemDetailsService problems, ILogger<ErrorAnswers> log) : IExceptionHandler
{
    /// <summary>Seconds a client should wait before retrying during a database outage.</summary>
    public const int RetryAfterSeconds = 5;

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        var (status, title, detail) = exception switch
        {
            BadHttpRequestException b => (b.StatusCode, "The request is invalid", Detail(b)),
            _ when DatabaseAway(exception) => (StatusCodes.Status503ServiceUnavailable, "The database is unavailable",
                $"PostgreSQL cannot be reached right now (a restart or an outage). Retry after {RetryAfterSeconds} s; a submission retried with the same Idempotency-Key is never created twice."),
            _ when Find<PostgresException>(exception) is { SqlState: "22021" or "22P05" } =>
                (StatusCodes.Status400BadRequest, "The request is invalid", "a value in the request contains a character that cannot be stored (a NUL byte or an invalid encoding)"),
            _ => (0, "", ""),
        };
        if (status == 0) return false;
        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            log.LogWarning("{Method} {Path}: 503, the database is away: {Message}", context.Request.Method, context.Request.Path, exception.Message);
        }
        context.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }

    /// <summary>The binding failure's own words ("Failed to bind parameter \"int page\" from \"99999999999\"."), or for a
    /// body that is not the expected JSON, where (the field's path, line and column, 1-based) and why.</summary>
    static string Detail(BadHttpRequestException b) => b.InnerException is System.Text.Json.JsonException j
        ? $"the JSON body does not match the expected shape{(string.IsNullOrEmpty(j.Path) ? "" : $" at {j.Path}")}"
          + $"{(HcService.Contract.Config.JsonErrors.Where(j) is { } at ? $" ({at})" : "")}: "
          + (HcService.Contract.Config.JsonErrors.ExpectedType(j) is { } type ? $"must be {type}" : HcService.Contract.Config.JsonErrors.Reason(j))
        : b.Message;

    /// <summary>True when the exception (or one it wraps: EF Core's execution strategy wraps them) says PostgreSQL is away.</summary>
    public static bool DatabaseAway(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (DbRetry.IsTransient(x)) return true;

        }
        return false;
    }

    static T? Find<T>(Exception e) where T : Exception
    {
        for (var x = e; x is not null; x = x.InnerException) if (x is T t) return t;
        return null;
    }
}

/// <summary>Request paths and query values with control characters (NUL and the like) are refused with a 400 naming
/// the parameter before any endpoint sees them: nothing legitimate contains them, and PostgreSQL cannot store NUL.</summary>
public sealed class ControlCharacterGuard(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context, IProblemDetailsService problems)
    {
        var bad = context.Request.Path.Value is { } path && path.Any(char.IsControl) ? "path" : null;
        foreach (var (name, values) in context.Request.Query)
        {
            if (bad is not null) break;
            if (name.Any(char.IsControl) || values.Any(v => v?.Any(char.IsControl) == true)) bad = name.Any(char.IsControl) ? "query" : name;
        }
        if (bad is null) { await next(context); return; }
        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new HttpValidationProblemDetails(new Dictionary<string, string[]> { [bad] = [$"{bad} contains a control character (NUL, a line break, ...); none is allowed"] })
            {
                Status = 400, Title = "The request is invalid", Detail = $"{bad}: control characters are not allowed",
            },
        });
    }
}
