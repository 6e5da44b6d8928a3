using System.Text.Json;
using System.Text.Json.Serialization;
using HcService.Contract.Metrics;

namespace HcService.Core.Training;

/// <summary>One optimizer step, as every sink sees it.</summary>
public sealed record StepMetrics
{
    public required long Step { get; init; }
    public required long Tokens { get; init; }
    public required double Loss { get; init; }
    public required double CrossEntropy { get; init; }
    public required double Lr { get; init; }
    public required double GradNorm { get; init; }
    public required double StepSeconds { get; init; }
    public required double TokensPerSecond { get; init; }
    /// <summary>Model FLOPs utilisation: training FLOPs per token x tokens/s / device peak.</summary>
    public required double Mfu { get; init; }
    public double? LoadBalancingLoss { get; init; }
    public double? RouterZLoss { get; init; }
    /// <summary>Per MoE layer, tokens routed to each expert (summed over the step's micro-batches).</summary>
    public IReadOnlyList<long[]>? ExpertTokens { get; init; }
    /// <summary>HC statistics by their stored name (e.g. "hc/ar_identity_dist/k3"), on steps where they are sampled.</summary>
    public IReadOnlyDictionary<string, double>? Hc { get; init; }

    /// <summary>The step's metrics under their stored names (<see cref="MetricRegistry"/>).</summary>
    public IEnumerable<(string Name, double Value)> Named()
    {
        yield return (MetricRegistry.TrainLoss.Name, Loss);
        yield return (MetricRegistry.TrainCrossEntropy.Name, CrossEntropy);
        yield return (MetricRegistry.Lr.Name, Lr);
        yield return (MetricRegistry.GradNorm.Name, GradNorm);
        yield return (MetricRegistry.TokensPerSecond.Name, TokensPerSecond);
        yield return (MetricRegistry.StepSeconds.Name, StepSeconds);
        yield return (MetricRegistry.Mfu.Name, Mfu);
        if (LoadBalancingLoss is { } lb) yield return (MetricRegistry.LoadBalancingLoss.Name, lb);
        if (RouterZLoss is { } z) yield return (MetricRegistry.RouterZLoss.Name, z);
        if (ExpertTokens is { } experts)
            for (var l = 0; l < experts.Count; l++)
                for (var e = 0; e < experts[l].Length; e++) yield return (MetricRegistry.ExpertTokensOf(l, e), experts[l][e]);
        if (Hc is { } hc) foreach (var (name, value) in hc) yield return (name, value);
    }
}

/// <summary>Loss and perplexity of one validation set; for an image classifier also its top-1 and top-5 accuracy (and the
/// loss is per image).</summary>
public sealed record ValidationMetrics(long Step, long Tokens, string Dataset, double Loss, double Perplexity, long EvalTokens)
{
    /// <summary>An image classifier's accuracies; null for a language model.</summary>
    public ClassificationAccuracy? Accuracy { get; init; }

    /// <summary>The validation's metrics under their stored names (<see cref="MetricRegistry"/>).</summary>
    public IEnumerable<(string Name, double Value)> Named() => Accuracy is { } a
        ? [(MetricRegistry.ValidationLossOf(Dataset), Loss), (MetricRegistry.ValidationTop1Of(Dataset), a.Top1), (MetricRegistry.ValidationTop5Of(Dataset), a.Top5)]
        : [(MetricRegistry.ValidationLossOf(Dataset), Loss), (MetricRegistry.ValidationPerplexityOf(Dataset), Perplexity)];
}

/// <summary>Top-1 and top-5 accuracy over <paramref name="Images"/> images.</summary>
public sealed record ClassificationAccuracy(double Top1, double Top5, long Images);

/// <summary>A checkpoint that was written and verified.</summary>
public sealed record CheckpointRecord(long Step, long Tokens, string Path, long Bytes, string Sha256);

/// <summary>Where the training loop reports. The CLI writes JSONL and prints progress; the service writes PostgreSQL.</summary>
public interface IMetricsSink
{
    void OnStep(StepMetrics m);
    void OnValidation(ValidationMetrics m);
    /// <summary>A checkpoint of <paramref name="step"/> is about to be written: whatever the sink holds for steps up to
    /// it must be durable first, so that a resume from that checkpoint never skips a step's points.</summary>
    void BeforeCheckpoint(long step) { }
    void OnCheckpoint(CheckpointRecord c);
    /// <summary>Downstream zero-shot results (in-loop evaluation).</summary>
    void OnEvaluation(HcService.Core.Evaluation.EvaluationMetrics m) { }
    /// <summary>A phase without steps is starting (a validation, a downstream evaluation): for a person watching.</summary>
    void OnPhase(string message) { }
}

/// <summary>metrics.jsonl: one JSON object per line, {"kind": "step" | "validation" | "checkpoint", ...}.</summary>
public sealed class JsonlMetricsSink : IMetricsSink, IDisposable
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
    readonly StreamWriter writer;

    public JsonlMetricsSink(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    public void OnStep(StepMetrics m) => Write("step", m);
    public void OnValidation(ValidationMetrics m) => Write("validation", m);
    public void OnCheckpoint(CheckpointRecord c) => Write("checkpoint", c);
    public void OnEvaluation(HcService.Core.Evaluation.EvaluationMetrics m) => Write("evaluation", m);

    void Write<T>(string kind, T value)
    {
        var node = JsonSerializer.SerializeToNode(value, Json)!.AsObject();
        node.Insert(0, "kind", kind);
        writer.WriteLine(node.ToJsonString(Json));
    }

    public void Dispose() => writer.Dispose();
}
