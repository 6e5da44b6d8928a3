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
/// <param name="Run">The run's summary.</param>
/// <param name="Spec">The job spec as submitted (the JobSpec schema).</param>
/// <param name="EtaSeconds">Time left while running (elapsed time per step x steps left); null otherwise.</param>
/// <param name="LatestMetrics">The latest point of every metric, by name (train/loss, val/&lt;set&gt;/loss, ...).</param>
/// <param name="Lease">The worker holding the running run and until when; null when none holds it.</param>
/// <param name="MaxAttempts">Attempts allowed before the run fails (a retry raises it).</param>
/// <param name="Attempts">Every attempt, oldest first.</param>
public sealed record RunDetail(RunSummary Run, JsonElement Spec, double? EtaSeconds, IReadOnlyDictionary<string, MetricValue> LatestMetrics,
    LeaseInfo? Lease, int MaxAttempts, IReadOnlyList<AttemptInfo> Attempts);

/// <summary>The worker holding a running run, and until when unless it renews.</summary>
/// <param name="Owner">The worker's name, host:pid:queue.</param>
/// <param name="ExpiresAt">When the lease runs out unless renewed (every 10 s by default).</param>
public sealed record LeaseInfo(string Owner, DateTimeOffset ExpiresAt);

/// <summary>One attempt: its worker, its times and how it ended.</summary>
/// <param name="Attempt">Its number, from 1 (the fencing token of its writes).</param>
/// <param name="Worker">The worker that ran it, host:pid:queue.</param>
/// <param name="StartedAt">When the worker claimed the run.</param>
/// <param name="EndedAt">When it ended; null while it runs.</param>
/// <param name="Outcome">succeeded, failed, cancelled, stopped (handed back; not counted) or lost (its lease ran out); null while it runs.</param>
/// <param name="Reason">Why it failed or was lost.</param>
public sealed record AttemptInfo(int Attempt, string Worker, DateTimeOffset StartedAt, DateTimeOffset? EndedAt, string? Outcome, string? Reason);

/// <summary>One value of a metric.</summary>
/// <param name="Step">The optimiser step (0: before training, for validation).</param>
/// <param name="Tokens">Training tokens seen at that step.</param>
/// <param name="Value">The value; "NaN" or "Infinity" (strings) for a diverged loss.</param>
public sealed record MetricValue(long Step, long Tokens, double Value);

/// <summary>One metric's points, by step; a downsampled range has bucket means at their mean step.</summary>
/// <param name="Name">The metric's stored name, e.g. train/loss or val/valid-austen-bytes/loss.</param>
/// <param name="Points">Its points in step order.</param>
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

/// <summary>A checkpoint record.</summary>
/// <param name="Step">The step it holds.</param>
/// <param name="Tokens">Training tokens seen at that step.</param>
/// <param name="Bytes">The file's size.</param>
/// <param name="Sha256">The file's SHA-256 (hex), also sent as X-Checkpoint-Sha256 with the download.</param>
/// <param name="CreatedAt">When it was written.</param>
/// <param name="DownloadUrl">GET it for the file.</param>
public sealed record CheckpointInfo(long Step, long Tokens, long Bytes, string Sha256, DateTimeOffset CreatedAt, string DownloadUrl);

/// <summary>A stored evaluation value.</summary>
/// <param name="Step">The checkpoint step it was scored at.</param>
/// <param name="Task">The task (arc_easy, ...), or average: the paper's 7-task downstream average.</param>
/// <param name="Metric">acc, acc_norm or items (the number of items scored).</param>
/// <param name="Value">The accuracy, a fraction in [0, 1], or the item count.</param>
/// <param name="Stderr">An accuracy's standard error (binomial from the task's item count, as lm-evaluation-harness
/// reports acc_stderr; for the average, of the mean of its tasks); null for the item count.</param>
/// <param name="CreatedAt">When it was stored.</param>
public sealed record EvaluationInfo(long Step, string Task, string Metric, double Value, double? Stderr, DateTimeOffset CreatedAt);

/// <summary>A model preset with its estimates.</summary>
/// <param name="Name">The name a spec's model.preset takes.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="DModel">Model width.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="MlpHidden">Dense MLP hidden width.</param>
/// <param name="MaxSeqLen">Maximum (and default training) sequence length.</param>
/// <param name="Vocab">Tokenizer vocabulary.</param>
/// <param name="Architecture">The preset's own architecture, dense or moe (a spec's architecture overrides it).</param>
/// <param name="Parameters">Exact parameter count with residual connections.</param>
/// <param name="ParametersDhcX4">Exact parameter count with dynamic-hc at n = 4.</param>
/// <param name="TrainingFlopsPerToken">Training FLOPs per token (forward and backward).</param>
/// <param name="MemoryBytesPerSequence">Estimated training memory in bytes with bf16 and one sequence per micro-batch.</param>
public sealed record PresetInfo(string Name, int Layers, int DModel, int Heads, int MlpHidden, int MaxSeqLen, int Vocab, string Architecture,
    long Parameters, long ParametersDhcX4, long TrainingFlopsPerToken, long MemoryBytesPerSequence);

/// <summary>A dataset under the data root.</summary>
/// <param name="Name">The folder's name, which a spec's data.train and data.validation take.</param>
/// <param name="Tokenizer">gpt2 or bytes ("unknown" without a manifest, "invalid" for an unreadable one, "images" for an
/// image dataset).</param>
/// <param name="VocabSize">The tokenizer's vocabulary.</param>
/// <param name="Tokens">Tokens it holds; -1 when unknown.</param>
/// <param name="Error">Why it cannot be used (an unreadable manifest); null otherwise.</param>
public sealed record DatasetInfo(string Name, string Tokenizer, int VocabSize, long Tokens, string? Error = null)
{
    /// <summary>An image dataset's class names in label order (image-classification jobs train on it); null for a token
    /// dataset.</summary>
    public IReadOnlyList<string>? Classes { get; init; }
}
