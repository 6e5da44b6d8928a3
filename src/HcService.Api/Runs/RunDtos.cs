using System.Text.Json;
using HcService.Store;
using HcService.Store.Runs;

namespace HcService.Api.Runs;

/// <summary>A run in lists.</summary>
/// <param name="Id">The run's number.</param>
/// <param name="Name">The spec's name (a group adds -s&lt;seed&gt;).</param>
/// <param name="Status">queued, running, cancelling, succeeded, failed or cancelled.</param>
/// <param name="Preset">The model preset (tiny, small, ...).</param>
/// <param name="Architecture">dense or moe.</param>
/// <param name="Connection">residual, post-norm, static-hc, dynamic-hc, frac, mhc or mhc-lite.</param>
/// <param name="Rate">The expansion rate n (streams), or the fraction count m for frac; 1 for residual.</param>
/// <param name="Tags">The spec's tags; a group adds group:&lt;name&gt;.</param>
/// <param name="Attempt">Attempts started so far.</param>
/// <param name="Step">Optimiser steps done.</param>
/// <param name="TotalSteps">Steps of the whole budget.</param>
/// <param name="Tokens">Training tokens seen.</param>
/// <param name="TokenBudget">Training tokens of the whole run.</param>
/// <param name="Progress">Tokens over budget, in percent (two decimals).</param>
/// <param name="CreatedAt">When it was submitted.</param>
/// <param name="StartedAt">When its first attempt started.</param>
/// <param name="FinishedAt">When it reached a final status.</param>
/// <param name="FailureReason">Why it failed or was cancelled.</param>
/// <param name="Seed">The training seed of the resolved plan (runs of one group differ in it); null before the plan exists.</param>
/// <param name="EtaSeconds">Time left while running, from the mean time per step so far; null otherwise.</param>
public sealed record RunSummary(long Id, string Name, string Status, string Preset, string Architecture, string Connection, int Rate,
    string[] Tags, int Attempt, long Step, long TotalSteps, long Tokens, long TokenBudget, double Progress,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, string? FailureReason, long? Seed, double? EtaSeconds)
{
    public static RunSummary Of(Run r) => new(r.Id, r.Name, r.Status, r.Preset, r.Architecture, r.Connection, r.Rate, r.Tags, r.Attempt,
        r.Step, r.TotalSteps, r.Tokens, r.TokenBudget, r.TokenBudget > 0 ? Math.Round(100.0 * r.Tokens / r.TokenBudget, 2) : 0,
        r.CreatedAt, r.StartedAt, r.FinishedAt, r.FailureReason, SeedOf(r.Plan), Eta(r, DateTimeOffset.UtcNow));

    static long? SeedOf(string? plan)
    {
        if (plan is null) return null;
        using var doc = JsonDocument.Parse(plan);
        return doc.RootElement.TryGetProperty("training", out var t) && t.TryGetProperty("seed", out var s) && s.TryGetInt64(out var seed) ? seed : null;
    }

    /// <summary>Seconds left of a running run at the mean time per step of its attempts so far.</summary>
    public static double? Eta(Run r, DateTimeOffset now) =>
        r.Status == RunStatus.Running && r.StartedAt is { } started && r.Step > 0
            ? Math.Round((now - started).TotalSeconds / r.Step * (r.TotalSteps - r.Step), 1) : null;
}

/// <summary>One run in full: its spec, progress with ETA, the latest value of each metric, its lease and its attempts.</summary>
public sealed record RunDetail(RunSummary Run, JsonElement Spec, double? EtaSeconds, IReadOnlyDictionary<string, MetricValue> LatestMetrics,
    LeaseInfo? Lease, int MaxAttempts, IReadOnlyList<AttemptInfo> Attempts);

/// <summary>The worker holding a running run, and until when unless it renews.</summary>
public sealed record LeaseInfo(string Owner, DateTimeOffset ExpiresAt);

/// <summary>One attempt: its worker, its times and how it ended (succeeded, failed, cancelled, lost; null while it runs).</summary>
public sealed record AttemptInfo(int Attempt, string Worker, DateTimeOffset StartedAt, DateTimeOffset? EndedAt, string? Outcome, string? Reason);

public sealed record MetricValue(long Step, long Tokens, double Value);

public sealed record MetricSeries(string Name, IReadOnlyList<MetricValue> Points);

/// <summary>A page of runs, newest first.</summary>
/// <param name="Items">The runs of this page.</param>
/// <param name="Total">Runs matching the filters, on all pages.</param>
/// <param name="Page">This page's number, from 1.</param>
/// <param name="PageSize">Runs per page.</param>
/// <param name="Latest">The latest training loss and validation loss per set of each run on the page (for tables).</param>
public sealed record RunPage(IReadOnlyList<RunSummary> Items, int Total, int Page, int PageSize, IReadOnlyList<RunLatest> Latest);

/// <summary>A run's latest losses: <c>train/loss</c>, and <c>val/&lt;set&gt;/loss</c> per validation set (by metric name).</summary>
public sealed record RunLatest(long RunId, MetricValue? TrainLoss, IReadOnlyDictionary<string, MetricValue> ValidationLoss);

public sealed record CheckpointInfo(long Step, long Tokens, long Bytes, string Sha256, DateTimeOffset CreatedAt, string DownloadUrl);

/// <summary>A stored evaluation value; <see cref="Stderr"/>: an accuracy's standard error (binomial from the task's item count,
/// as lm-evaluation-harness reports acc_stderr; for the average, of the mean of its tasks), none for the item count.</summary>
public sealed record EvaluationInfo(long Step, string Task, string Metric, double Value, double? Stderr, DateTimeOffset CreatedAt);

public sealed record PresetInfo(string Name, int Layers, int DModel, int Heads, int MlpHidden, int MaxSeqLen, int Vocab, string Architecture,
    long Parameters, long ParametersDhcX4, long TrainingFlopsPerToken, long MemoryBytesPerSequence);

/// <summary>A dataset under the data root; <see cref="Error"/> says why one cannot be used (an unreadable manifest).</summary>
public sealed record DatasetInfo(string Name, string Tokenizer, int VocabSize, long Tokens, string? Error = null);
