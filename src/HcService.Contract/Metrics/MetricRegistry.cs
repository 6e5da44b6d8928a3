namespace HcService.Contract.Metrics;

/// <summary>
/// One training metric, declared once. <paramref name="Name"/> is the name the run store keeps its points under, the
/// REST API and the event stream serve, and the documentation uses (a template for per-dataset, per-layer or
/// per-statistic names: <c>val/{dataset}/loss</c>). <paramref name="Instrument"/> is the OpenTelemetry instrument the
/// worker exports it as (Prometheus: dots become underscores), when it is exported; <paramref name="Label"/> is the
/// instrument label that tells the template's instances apart (the dataset; for HC statistics the stored name itself).
/// </summary>
public sealed record MetricDefinition(string Name, string Unit, string Description, string? Instrument = null, string? Label = null);

/// <summary>
/// Every training metric the service records (docs/telemetry.md lists them, and <c>TelemetryDocsTests</c> keeps the list
/// complete). The training child's sinks, the worker's Prometheus relay and every reader (comparisons, groups, the CLI)
/// take names from here.
/// </summary>
public static class MetricRegistry
{
    public static readonly MetricDefinition TrainLoss = new("train/loss", "nats per token",
        "training loss of the step: cross-entropy plus the weighted MoE auxiliary losses", "hc.train.loss");
    public static readonly MetricDefinition TrainCrossEntropy = new("train/cross_entropy", "nats per token",
        "training cross-entropy of the step (without auxiliary losses)");
    public static readonly MetricDefinition Lr = new("train/lr", "1", "learning rate of the step (warmup + schedule)", "hc.train.lr");
    public static readonly MetricDefinition GradNorm = new("train/grad_norm", "1", "global L2 gradient norm before clipping", "hc.train.grad_norm");
    public static readonly MetricDefinition TokensPerSecond = new("train/tokens_per_second", "tokens/s", "training throughput of the step",
        "hc.train.tokens_per_second");
    public static readonly MetricDefinition StepSeconds = new("train/step_seconds", "s", "wall-clock time of the optimizer step", "hc.train.step_seconds");
    public static readonly MetricDefinition Mfu = new("train/mfu", "fraction 0..1",
        "model FLOPs utilisation: analytic training FLOP/s over the device's peak", "hc.train.mfu");
    public static readonly MetricDefinition LoadBalancingLoss = new("train/load_balancing_loss", "1",
        "MoE load-balancing auxiliary loss (before its coefficient)", "hc.moe.load_balancing_loss");
    public static readonly MetricDefinition RouterZLoss = new("train/router_z_loss", "1", "MoE router z-loss (before its coefficient)",
        "hc.moe.router_z_loss");
    public static readonly MetricDefinition ExpertTokens = new("moe/expert_tokens/l{layer}/e{expert}", "tokens",
        "tokens routed to one expert of one MoE layer in the step (the worker exports the fraction: hc.moe.expert_load)");
    public static readonly MetricDefinition ValidationLoss = new("val/{dataset}/loss", "nats per token (per image for an image classifier)",
        "loss on a held-out dataset at a validation", "hc.val.loss", "dataset");
    public static readonly MetricDefinition ValidationPerplexity = new("val/{dataset}/perplexity", "1", "exp of the validation loss");
    public static readonly MetricDefinition ValidationTop1 = new("val/{dataset}/top1", "1",
        "an image classifier's top-1 accuracy on a held-out split at a validation (the fraction of images whose highest logit is their class)");
    public static readonly MetricDefinition ValidationTop5 = new("val/{dataset}/top5", "1",
        "an image classifier's top-5 accuracy on a held-out split at a validation (the class among the five highest logits)");
    public static readonly MetricDefinition ConnectionStatistic = new("hc/{stat}/k{sublayer}", "1",
        "a stream-mixing connection's statistic of sublayer k (ar_identity_dist, beta_mean_abs, am_own; alpha_scale, beta_scale for DHC), every 10 steps",
        "hc.connection_stat", "stat");
    public static readonly MetricDefinition CompositeGain = new("hc/composite_gain", "1",
        "the composite gain of the residual path: the largest absolute row sum of G^T, G the product of every sublayer's static A_r in order (mHC: at zero projection), every 10 steps",
        "hc.composite_gain");

    /// <summary>Exported by the worker only (not stored): progress and the process's memory.</summary>
    public static readonly MetricDefinition Tokens = new("(not stored)", "tokens", "tokens trained on so far", "hc.train.tokens");
    public static readonly MetricDefinition Step = new("(not stored)", "steps", "optimizer step", "hc.train.step");
    public static readonly MetricDefinition ProcessMemory = new("(not stored)", "bytes", "resident memory of the training process (RSS)",
        "hc.device.memory_bytes");
    public static readonly MetricDefinition ExpertLoad = new("(not stored)", "fraction 0..1",
        "fraction of the layer's routed tokens that went to the expert", "hc.moe.expert_load", "layer, expert");

    public static readonly IReadOnlyList<MetricDefinition> All =
    [
        TrainLoss, TrainCrossEntropy, Lr, GradNorm, TokensPerSecond, StepSeconds, Mfu, LoadBalancingLoss, RouterZLoss, ExpertTokens,
        ValidationLoss, ValidationPerplexity, ValidationTop1, ValidationTop5, ConnectionStatistic, CompositeGain, Tokens, Step, ProcessMemory, ExpertLoad,
    ];

    /// <summary>The definition a stored name belongs to (its exact name, or the template it is an instance of); null if none.</summary>
    public static MetricDefinition? Find(string name) =>
        All.FirstOrDefault(d => d.Name == name)
        ?? All.FirstOrDefault(d => d.Name.Contains('{') && System.Text.RegularExpressions.Regex.IsMatch(name,
            "^" + System.Text.RegularExpressions.Regex.Replace(System.Text.RegularExpressions.Regex.Escape(d.Name).Replace(@"\{", "{"), "{[a-z]+}", "[^/]+") + "$"));

    /// <summary>The worker's exported instruments.</summary>
    public static IEnumerable<string> Instruments => All.Select(d => d.Instrument).OfType<string>().Distinct();

    /// <summary>Where validation metrics start: <c>val/</c>.</summary>
    public const string ValidationPrefix = "val/";

    public static string ValidationLossOf(string dataset) => $"{ValidationPrefix}{dataset}/loss";
    public static string ValidationPerplexityOf(string dataset) => $"{ValidationPrefix}{dataset}/perplexity";
    public static string ValidationTop1Of(string dataset) => $"{ValidationPrefix}{dataset}/top1";
    public static string ValidationTop5Of(string dataset) => $"{ValidationPrefix}{dataset}/top5";

    /// <summary>True for <c>val/{dataset}/loss</c>, with the dataset.</summary>
    public static bool IsValidationLoss(string name, out string dataset)
    {
        dataset = "";
        if (!name.StartsWith(ValidationPrefix, StringComparison.Ordinal) || !name.EndsWith("/loss", StringComparison.Ordinal)
            || name.Length <= ValidationPrefix.Length + "/loss".Length) return false;
        dataset = name[ValidationPrefix.Length..^"/loss".Length];
        return true;
    }

    public static string ExpertTokensOf(int layer, int expert) => $"moe/expert_tokens/l{layer}/e{expert}";

    /// <summary><c>hc/{stat}/k{sublayer}</c>, e.g. hc/ar_identity_dist/k3.</summary>
    public static string ConnectionStatisticOf(string stat, int sublayer) => $"hc/{stat}/k{sublayer}";
}
