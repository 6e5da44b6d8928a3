using System.Text.Json;
using HcService.Store;
using HcService.Store.Runs;

namespace HcService.Api.Runs;

/// <summary>A run in lists.</summary>
public sealed record RunSummary(long Id, string Name, string Status, string Preset, string Architecture, string Connection, int Rate,
    string[] Tags, int Attempt, long Step, long TotalSteps, long Tokens, long TokenBudget, double Progress,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, string? FailureReason)
{
    public static RunSummary Of(Run r) => new(r.Id, r.Name, r.Status, r.Preset, r.Architecture, r.Connection, r.Rate, r.Tags, r.Attempt,
        r.Step, r.TotalSteps, r.Tokens, r.TokenBudget, r.TokenBudget > 0 ? Math.Round(100.0 * r.Tokens / r.TokenBudget, 2) : 0,
        r.CreatedAt, r.StartedAt, r.FinishedAt, r.FailureReason);
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

public sealed record RunPage(IReadOnlyList<RunSummary> Items, int Total, int Page, int PageSize);

public sealed record CheckpointInfo(long Step, long Tokens, long Bytes, string Sha256, DateTimeOffset CreatedAt, string DownloadUrl);

/// <summary>A stored evaluation value; <see cref="Stderr"/>: an accuracy's standard error (binomial from the task's item count,
/// as lm-evaluation-harness reports acc_stderr; for the average, of the mean of its tasks), none for the item count.</summary>
public sealed record EvaluationInfo(long Step, string Task, string Metric, double Value, double? Stderr, DateTimeOffset CreatedAt);

public sealed record PresetInfo(string Name, int Layers, int DModel, int Heads, int MlpHidden, int MaxSeqLen, int Vocab, string Architecture,
    long Parameters, long ParametersDhcX4, long TrainingFlopsPerToken, long MemoryBytesPerSequence);

/// <summary>A dataset under the data root; <see cref="Error"/> says why one cannot be used (an unreadable manifest).</summary>
public sealed record DatasetInfo(string Name, string Tokenizer, int VocabSize, long Tokens, string? Error = null);
