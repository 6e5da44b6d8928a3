using HcService.Contract.Config;
using Microsoft.AspNetCore.Http.HttpResults;

namespace HcService.Api;

/// <summary>Bad input as one kind of answer everywhere: 400 ValidationProblem, errors grouped by field, each naming the
/// field, the value and what is allowed (docs/design.md section 3.1).</summary>
public static class Problems
{
    public static ValidationProblem Invalid(IEnumerable<ConfigError> errors, string title)
    {
        var list = errors.ToList();
        return TypedResults.ValidationProblem(list.GroupBy(e => e.Field).ToDictionary(g => g.Key, g => g.Select(e => e.ToString()).ToArray()),
            title: title, detail: string.Join("; ", list));
    }

    /// <summary>The title of every 400 for a query parameter's value (its errors name the parameter, the value and what
    /// is allowed), whatever the route.</summary>
    public const string QueryTitle = "The query is invalid";

    /// <summary>Query parameters out of their range or set: 400 titled <see cref="QueryTitle"/>.</summary>
    public static ValidationProblem InvalidQuery(IEnumerable<ConfigError> errors) => Invalid(errors, QueryTitle);
}
