using HcService.Contract.Metrics;
using System.Text.Json.Nodes;
using Hangfire;
using HcService.Api.Auth;
using HcService.Api.Runs;
using HcService.Contract.Config;
using HcService.Contract.Jobs;
using HcService.Contract.Analysis;
using HcService.Contract.Evaluation;
using HcService.Store;
using HcService.Store.Jobs;
using HcService.Store.Runs;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace HcService.Api.Evaluations;

/// <summary>POST /api/groups: a grid of runs as one call. Each variant is merged onto the base spec (objects merged
/// field by field, anything else replaced), e.g. the paper's Table 1: base = the residual run, variants = DHC at
/// n = 1, 2, 4, 8 and SHC x4. With seeds, the base and every variant run once per seed (training.seed set,
/// "-s&lt;seed&gt;" added to the name), so that each variant is compared with the baseline seed by seed.</summary>
/// <param name="Name">The group's name, 1 to 60 letters, digits, '.', '_' or '-'; taken once.</param>
/// <param name="Base">The baseline's job spec; its run is the first of the group.</param>
/// <param name="Variants">1 to 32 objects merged onto the base.</param>
/// <param name="Seeds">1 to 10 distinct non-negative integers: every spec runs once per seed (at most 64 runs a group);
/// absent: each spec runs once at its own seed.</param>
/// <remarks>Base and variants arrive as JSON elements (read under the strict options: a field given twice is a 400) and
/// become objects here.</remarks>
public sealed record GroupRequest(string? Name, System.Text.Json.JsonElement? Base, List<System.Text.Json.JsonElement>? Variants, List<long>? Seeds = null);

/// <summary>A created group.</summary>
/// <param name="Group">Its name.</param>
/// <param name="Runs">Its runs, the baseline first.</param>
/// <param name="TableUrl">Its table: GET /api/groups/{name}.</param>
public sealed record GroupCreated(string Group, IReadOnlyList<RunSummary> Runs, string TableUrl);

/// <summary>One row of a group's table: the run, its final validation loss and perplexity per set, the downstream
/// average with its standard error, and the differences to the baseline run of its seed (candidate - baseline); the
/// downstream difference is noise when it lies within two standard errors of itself; and the run's latest composite gain
/// of the residual path (stream-mixing connections: HC, mHC, mHC-lite; docs/hc-math.md section 8.5), null for others.</summary>
public sealed record GroupRow(RunSummary Run, bool IsBaseline, IReadOnlyDictionary<string, double> ValidationLoss, IReadOnlyDictionary<string, double> Perplexity,
    double? DownstreamAverage, double? DownstreamStderr, IReadOnlyDictionary<string, double> LossDelta, double? DownstreamDelta, bool DownstreamNoise,
    double? CompositeGain);

/// <summary>One variant of a group over its seeds: the mean and standard deviation of its final validation loss per set
/// and of its downstream average; against the baseline variant, the seed-paired deltas with their 95% intervals and
/// verdicts, and every plan field besides the connection and the seed in which it differs from the baseline (confounds).</summary>
public sealed record VariantRow(VariantInfo Variant, bool IsBaseline, IReadOnlyDictionary<string, SeedSummary> ValidationLoss, SeedSummary? DownstreamAverage,
    IReadOnlyDictionary<string, PairedDifference> LossDelta, PairedDifference? DownstreamDelta, IReadOnlyList<PlanDifference> Confounds, bool Confounded,
    string? Verdict);

/// <summary>GET /api/groups/{name}: the group's table in the paper's layout: one row per run (each run's deltas against the
/// baseline run of its seed), and one row per variant over its seeds, the baseline first.</summary>
public sealed record GroupTable(string Group, long? BaselineRunId, IReadOnlyList<string> ValidationSets, IReadOnlyList<GroupRow> Rows,
    IReadOnlyList<VariantRow> Variants, string? ComparisonUrl);

public static class GroupsApi
{
    /// <summary>The tag every member carries (list filters: ?tag=group:NAME); reserved: a run spec cannot carry it.</summary>
    public const string TagPrefix = "group:";

    public static void MapGroups(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/groups").WithTags("Experiment groups");
        g.MapPost("/", Submit).WithName("createGroup").RequireScope(Scopes.Submit)
            .WithSummary("Submit a grid of runs as one call: a base spec and variants merged onto it, each run once per seed when seeds are given; the runs are the group's members (and tagged group:<name>); a name is used once (409)");
        g.MapGet("/{name}", Table).WithName("getGroupTable").RequireScope(Scopes.Read)
            .WithSummary("The group's table: per run, validation loss and perplexity per set, downstream average, deltas to the baseline (the residual run) of its seed; per variant, mean and std over seeds, seed-paired deltas with 95% intervals and verdicts, confounds");
    }

    /// <param name="queue">cpu (default) or cuda: the workers that may take the group's runs.</param>
    static async Task<Results<Created<GroupCreated>, ValidationProblem, Conflict<ProblemDetails>>> Submit(GroupRequest request, HcDbContext db,
        RunLifecycle lifecycle, SpecValidator validator, RunDurationCap durationCap, IBackgroundJobClient jobs, LeaseOptions leases, System.Security.Claims.ClaimsPrincipal user,
        [FromQuery] string? queue, CancellationToken ct)
    {
        var errors = new List<ConfigError>();
        var name = request.Name;
        if (name is null || !System.Text.RegularExpressions.Regex.IsMatch(name, "^[A-Za-z0-9._-]{1,60}$"))
            errors.Add(new("name", name, "a group name of 1 to 60 letters, digits, '.', '_' or '-'"));
        var baseSpec = request.Base is { ValueKind: System.Text.Json.JsonValueKind.Object } b ? JsonObject.Create(b) : null;
        if (baseSpec is null) errors.Add(new("base", request.Base?.ValueKind.ToString(), "a job spec (the baseline's), a JSON object"));
        var variants = (request.Variants ?? []).Select(v => v.ValueKind == System.Text.Json.JsonValueKind.Object ? JsonObject.Create(v) : null).ToList();
        if (variants.Count is < 1 or > 32) errors.Add(new("variants", variants.Count, "a list of 1 to 32 objects merged onto the base spec"));
        for (var i = 0; i < variants.Count; i++)
            if (variants[i] is null) errors.Add(new($"variants[{i}]", null, "an object merged onto the base spec"));
        var seeds = request.Seeds;
        if (seeds is not null && (seeds.Count is < 1 or > MaxSeeds || seeds.Distinct().Count() != seeds.Count || seeds.Any(x => x < 0)))
            errors.Add(new("seeds", System.Text.Json.JsonSerializer.Serialize(seeds), $"a list of 1 to {MaxSeeds} distinct non-negative integers (each variant runs once per seed)"));
        else if (seeds is not null && (variants.Count + 1) * seeds.Count > MaxRuns)
            errors.Add(new("seeds", System.Text.Json.JsonSerializer.Serialize(seeds), $"at most {MaxRuns} runs in a group: {variants.Count + 1} specs x {seeds.Count} seeds is {(variants.Count + 1) * seeds.Count}"));
        var device = DeviceQueues.Parse(queue);
        if (device is null) errors.Add(new("queue", queue, DeviceQueues.Allowed));
        if (errors.Count > 0) return Problem(errors);

        // The base itself is the first run (the baseline), then each variant merged onto it.
        var specs = new List<(JobSpec Spec, JobPlan Plan)>();
        var merged = new[] { (JsonObject)baseSpec!.DeepClone() }.Concat(variants.Select(v => Merge((JsonObject)baseSpec!.DeepClone(), v!))).ToList();
        var grid = new List<(string Field, JsonObject Spec)>();
        for (var i = 0; i < merged.Count; i++)
        {
            var field = i == 0 ? "base" : $"variants[{i - 1}]";
            var tags = merged[i]["tags"] as JsonArray ?? [];
            if (tags.Any(t => t is JsonValue v && v.TryGetValue<string>(out var text) && text.StartsWith(TagPrefix, StringComparison.Ordinal)))
                errors.Add(new($"{field}.tags", tags.ToJsonString(), $"tags not starting with '{TagPrefix}' (the group's tag is added to its runs here)"));
            tags.Add(TagPrefix + name);
            merged[i]["tags"] = tags;
            // A variant names its runs only with a name of its own: the base's would make its runs look like the baseline's.
            var own = i == 0 ? baseSpec!["name"] : variants[i - 1]!["name"];
            var runName = own is JsonValue n && n.TryGetValue<string>(out var given) ? given : $"{name}-{i}";
            if (seeds is null) { merged[i]["name"] = own?.DeepClone() ?? runName; grid.Add((field, merged[i])); continue; }
            if (merged[i]["training"] is JsonObject t && t.ContainsKey("seed"))
                errors.Add(new($"{field}.training.seed", t["seed"]?.ToJsonString(), "absent: the group's seeds set each run's seed"));
            foreach (var seed in seeds)
            {
                var one = (JsonObject)merged[i].DeepClone();
                one["name"] = $"{runName}-s{seed}";
                if (one["training"] is not JsonObject training) one["training"] = training = [];
                training["seed"] = seed;
                grid.Add((field, one));
            }
        }
        foreach (var (field, one) in grid)
        {
            try
            {
                var spec = JobSpec.Parse(one.ToJsonString(), positions: false);   // merged text: no line the user wrote
                var (plan, specErrors) = validator.Validate(spec, device!.Value);
                if (plan is null) errors.AddRange(specErrors.Select(e => e with { Field = $"{field}.{e.Field}" }));
                else if (await durationCap.CheckAsync(plan, device!.Value, ct) is { } tooLong) errors.Add(tooLong with { Field = $"{field}.{tooLong.Field}" });
                else specs.Add((spec, plan));
            }
            catch (ConfigException e) { errors.AddRange(e.Errors.Select(x => x with { Field = $"{field}.{x.Field}" })); }
        }
        if (errors.Count > 0) return Problem(errors);

        // The group and its runs in one transaction: of concurrent creations of one name, exactly one commits (the
        // name is the groups table's key); membership is the runs' Group column, which nothing else writes.
        var now = DateTimeOffset.UtcNow;
        var runs = specs.Select(s => RunsApi.NewRun(s.Spec, s.Plan, device!.Value, leases, now)).ToList();
        foreach (var run in runs) run.Group = name;
        db.Groups.Add(new RunGroup { Name = name!, CreatedByKeyId = ApiKeys.CallerId(user), CreatedAt = now });
        db.Runs.AddRange(runs);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            return TypedResults.Conflict(new ProblemDetails { Title = "The group exists", Detail = $"group '{name}' exists already; pick another name", Status = 409 });
        }
        // Committed: a database that drops now delays the jobs (the lease reaper enqueues them), it does not fail the request.
        try { foreach (var run in runs) run.HangfireJobId = await RunQueue.EnqueueAsync(lifecycle, jobs, run.Id, run.Queue, ct); }
        catch (Exception e) when (ErrorAnswers.DatabaseAway(e)) { }
        HcInstruments.RunsSubmitted.Add(runs.Count);
        return TypedResults.Created($"/api/groups/{name}", new GroupCreated(name!, runs.Select(RunSummary.Of).ToList(), $"/api/groups/{name}"));
    }

    /// <summary>Seeds a group may run each variant at.</summary>
    const int MaxSeeds = 10;
    /// <summary>Runs a group may hold (a comparison takes as many).</summary>
    public const int MaxRuns = 64;

    static async Task<Results<Ok<GroupTable>, NotFound<ProblemDetails>>> Table(string name, HcDbContext db, CancellationToken ct)
    {
        var runs = await db.Runs.AsNoTracking().Where(r => r.Group == name).OrderBy(r => r.Id).ToListAsync(ct);
        if (runs.Count == 0) return TypedResults.NotFound(new ProblemDetails { Title = "Group not found", Detail = $"no group is named '{name}'", Status = 404 });
        var ids = runs.Select(r => r.Id).ToList();
        // The final validation point of each set: the latest step of each val/<set>/loss and /perplexity series.
        var finals = await db.Metrics.AsNoTracking().Where(m => ids.Contains(m.RunId) && m.Name.StartsWith(MetricRegistry.ValidationPrefix))
            .GroupBy(m => new { m.RunId, m.Name }).Select(g => g.OrderByDescending(m => m.Step).First()).ToListAsync(ct);
        var evaluations = await db.Evaluations.AsNoTracking().Where(e => ids.Contains(e.RunId)).ToListAsync(ct);
        var gains = (await db.Metrics.AsNoTracking().Where(m => ids.Contains(m.RunId) && m.Name == MetricRegistry.CompositeGain.Name)
            .GroupBy(m => m.RunId).Select(g => g.OrderByDescending(m => m.Step).First()).ToListAsync(ct)).ToDictionary(m => m.RunId, m => m.Value);
        var averages = evaluations.Where(e => e.Task == EvalMetrics.Average && e.Metric == EvalMetrics.Acc).ToList();
        var baseline = runs.FirstOrDefault(r => r.Connection == "residual") ?? runs[0];

        static string Set(string metric) => metric.Split('/')[1];
        var sets = finals.Where(m => m.Name.EndsWith("/loss", StringComparison.Ordinal)).Select(m => Set(m.Name)).Distinct().Order(StringComparer.Ordinal).ToList();
        Dictionary<string, double> Of(long run, string suffix) => finals.Where(m => m.RunId == run && m.Name.EndsWith(suffix, StringComparison.Ordinal))
            .ToDictionary(m => Set(m.Name), m => m.Value);
        double? Average(long run) => averages.Where(a => a.RunId == run).MaxBy(a => a.Step)?.Value;
        // The downstream average with its standard error (from its tasks' item counts).
        const string AverageScore = $"{EvalMetrics.Average} {EvalMetrics.Acc}";
        var scores = Variants.LatestScores(evaluations);
        double? AverageStderr(long run) => scores.TryGetValue(run, out var s) ? s.Errors.GetValueOrDefault(AverageScore) : null;
        var variants = Variants.Of(runs, baseline.Id);
        // Each run against the baseline run of its own seed (the baseline run itself where the baseline lacks that seed).
        var seedOf = variants.Candidates.Prepend(variants.Baseline).SelectMany(v => v.Members).ToDictionary(m => m.Run.Id, m => m.Seed);
        var baselineOfSeed = variants.Baseline.Members.GroupBy(m => m.Seed).ToDictionary(g => g.Key, g => g.First().Run.Id);
        var rows = runs.OrderBy(r => r.Id == baseline.Id ? 0 : 1).ThenBy(r => r.Id).Select(r =>
        {
            var partner = baselineOfSeed.GetValueOrDefault(seedOf[r.Id], baseline.Id);
            var baseLoss = Of(partner, "/loss");
            var loss = Of(r.Id, "/loss");
            var avg = Average(r.Id);
            double? delta = avg is { } a && Average(partner) is { } b ? a - b : null;
            var noise = delta is { } d && SeedStatistics.DifferenceStderr(d, AverageStderr(r.Id), AverageStderr(partner)).Noise;
            return new GroupRow(RunSummary.Of(r), r.Id == baseline.Id, loss, Of(r.Id, "/perplexity"), avg, AverageStderr(r.Id),
                loss.Where(l => baseLoss.ContainsKey(l.Key)).ToDictionary(l => l.Key, l => l.Value - baseLoss[l.Key]), delta, noise,
                gains.TryGetValue(r.Id, out var gain) ? gain : null);
        }).ToList();

        // Per variant over seeds: the final validation points as one-point curves (a pair counts once both runs have a
        // final point at equal tokens), the downstream average as a score.
        // (Non-finite finals, a diverged run's, have no curve: they are left out of the means and the pairs.)
        SeedRun SeedRunOf(Variants.Member m)
        {
            var curves = finals.Where(f => f.RunId == m.Run.Id && MetricRegistry.IsValidationLoss(f.Name, out _) && double.IsFinite(f.Value))
                .ToDictionary(f => Set(f.Name), f => new LossCurve(f.Name, [new LossPoint(f.Tokens, f.Value)]));
            return scores.TryGetValue(m.Run.Id, out var s) && s.Scores.TryGetValue(AverageScore, out var avg)
                ? new(m.Run.Id, m.Seed, curves, new Dictionary<string, double> { [AverageScore] = avg },
                    new Dictionary<string, double?> { [AverageScore] = s.Errors.GetValueOrDefault(AverageScore) }, s.Step)
                : new(m.Run.Id, m.Seed, curves);
        }
        var baseRuns = Variants.OnePerSeed(variants.Baseline).Select(SeedRunOf).ToList();
        VariantRow Row(Variants.Variant v, bool isBaseline)
        {
            var seedRuns = Variants.OnePerSeed(v).Select(SeedRunOf).ToList();
            var validation = sets.Where(set => seedRuns.Any(r => r.Curves.ContainsKey(set)))
                .ToDictionary(set => set, set => SeedSummary.Of(seedRuns.Where(r => r.Curves.ContainsKey(set)).Select(r => r.Curves[set].Last.Loss).ToList()));
            var averagesOf = seedRuns.Where(r => r.Scores is not null).Select(r => r.Scores![AverageScore]).ToList();
            var average = averagesOf.Count > 0 ? SeedSummary.Of(averagesOf) : null;
            if (isBaseline) return new VariantRow(v.Info, true, validation, average, new Dictionary<string, PairedDifference>(), null, [], false, null);
            var deltas = SeedComparison.Curves(baseRuns, seedRuns, (_, _) => Smoothing.None, speedup: false).ToDictionary(c => c.Metric, c => c.Delta);
            var downstream = SeedComparison.Scores(baseRuns, seedRuns).FirstOrDefault()?.Delta;
            var confounds = v.ConfoundsAgainst(variants.Baseline);
            return new VariantRow(v.Info, false, validation, average, deltas, downstream, confounds, confounds.Count > 0,
                Variants.Verdict(confounds, deltas.Select(d => (d.Key, d.Value)), SeedComparison.Pairs(baseRuns, seedRuns).Count));
        }
        var variantRows = variants.Candidates.Select(v => Row(v, false)).Prepend(Row(variants.Baseline, true)).ToList();
        return TypedResults.Ok(new GroupTable(name, baseline.Id, sets, rows, variantRows,
            runs.Count > 1 ? $"/api/comparisons?runs={string.Join(',', rows.Select(r => r.Run.Id))}&baseline={baseline.Id}" : null));
    }

    /// <summary>Objects merged field by field (recursively); anything else in <paramref name="patch"/> replaces.</summary>
    static JsonObject Merge(JsonObject target, JsonObject patch)
    {
        foreach (var (key, value) in patch)
        {
            if (value is JsonObject p && target[key] is JsonObject t) Merge(t, p);
            else target[key] = value?.DeepClone();
        }
        return target;
    }

    static ValidationProblem Problem(IEnumerable<ConfigError> errors) => Problems.Invalid(errors, "The group is invalid");
}
