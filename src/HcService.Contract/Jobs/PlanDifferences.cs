using System.Text.Json.Nodes;

namespace HcService.Contract.Jobs;

/// <summary>A field of the resolved plan in which two runs differ (values as JSON; null where one run lacks it).</summary>
public sealed record PlanDifference(string Field, string? Baseline, string? Candidate);

/// <summary>
/// What two runs' resolved plans hold equal. Runs of one variant differ only in their name, tags, seed and checkpoint
/// cadence (nothing that changes what is trained or measured); a candidate variant and its baseline should differ in
/// the connection only: any other difference (the init scaling, the learning rate, the batch, the data, the budget,
/// the precision, the validation) confounds the comparison.
/// </summary>
public static class PlanDifferences
{
    /// <summary>Fields that never tell variants apart.</summary>
    static readonly string[] Incidental = ["name", "tags", "training.seed", "training.checkpointEverySteps", "training.checkpointsToKeep",
        "training.recompute"];   // what backward keeps, not what it computes

    /// <summary>The connection's own fields; its init scaling is not one of them: it changes the sublayers' weights.</summary>
    const string Connection = "model.connection.";
    const string ConnectionInit = "model.connection.scaleOutputInit";

    /// <summary>The plan without its incidental fields, as one string: runs with equal keys are seeds of one variant.</summary>
    public static string VariantKey(JobPlan plan) =>
        string.Join('\n', Flatten(plan).Where(f => !IsIncidental(f.Key)).Select(f => $"{f.Key}={f.Value}"));

    /// <summary>Every field besides the connection, the seed and the incidental ones in which the plans differ.</summary>
    public static IReadOnlyList<PlanDifference> Confounds(JobPlan baseline, JobPlan candidate)
    {
        var (b, c) = (Flatten(baseline), Flatten(candidate));
        return b.Keys.Union(c.Keys).Where(k => !IsIncidental(k) && !(k.StartsWith(Connection, StringComparison.Ordinal) && k != ConnectionInit))
            .Order(StringComparer.Ordinal)
            .Select(k => new PlanDifference(k, b.GetValueOrDefault(k), c.GetValueOrDefault(k)))
            .Where(d => d.Baseline != d.Candidate).ToList();
    }

    static bool IsIncidental(string field) => Incidental.Any(i => field == i || field.StartsWith(i + ".", StringComparison.Ordinal) || field.StartsWith(i + "[", StringComparison.Ordinal));

    /// <summary>The plan's JSON as (path, value) leaves: objects by ".name", arrays by "[i]".</summary>
    static SortedDictionary<string, string> Flatten(JobPlan plan)
    {
        var leaves = new SortedDictionary<string, string>(StringComparer.Ordinal);
        void Walk(JsonNode? node, string path)
        {
            switch (node)
            {
                case JsonObject o: foreach (var (k, v) in o) Walk(v, path.Length == 0 ? k : $"{path}.{k}"); break;
                case JsonArray a: for (var i = 0; i < a.Count; i++) Walk(a[i], $"{path}[{i}]"); if (a.Count == 0) leaves[path] = "[]"; break;
                default: leaves[path] = node?.ToJsonString() ?? "null"; break;
            }
        }
        Walk(JsonNode.Parse(plan.ToJson()), "");
        return leaves;
    }
}
