using HcService.Contract.Config;

namespace HcService.Contract.Jobs;

public enum LrScheduleKind { Cosine, Linear, Constant }
public enum Precision { Fp32, Bf16 }
/// <summary>What backward recomputes instead of keeping (training.recompute).</summary>
public enum RecomputeMode { None, Hc, Block }
public enum DeviceKind { Cpu, Cuda }

/// <summary>In-loop downstream evaluation: the tasks (limit applied), every how many steps, requests per batch.</summary>
public sealed record EvaluationPlan(IReadOnlyList<HcService.Contract.Evaluation.EvalTaskSpec> Tasks, long EverySteps, int BatchSize);

public sealed record TrainingPlan
{
    public required long TokenBudget { get; init; }
    /// <summary>Tokens per optimizer step = MicroBatch x SeqLen x Accumulation.</summary>
    public required long BatchTokens { get; init; }
    public required int MicroBatch { get; init; }
    public required int SeqLen { get; init; }
    public required int Accumulation { get; init; }
    /// <summary>Optimizer steps: TokenBudget / BatchTokens, rounded down.</summary>
    public required long Steps { get; init; }
    public required double Lr { get; init; }
    public required LrScheduleKind Schedule { get; init; }
    public required long WarmupSteps { get; init; }
    public required double MinLrRatio { get; init; }
    public required double WeightDecay { get; init; }
    public required double GradClip { get; init; }
    public required Precision Precision { get; init; }
    public required long Seed { get; init; }
    public required long EvalEverySteps { get; init; }
    public required long EvalTokens { get; init; }
    public required long CheckpointEverySteps { get; init; }
    public required int CheckpointsToKeep { get; init; }
    /// <summary>What backward recomputes (absent from plans stored before it existed: none).</summary>
    public RecomputeMode Recompute { get; init; }
    /// <summary>AdamW's beta2: 0.95 for language models (OLMo), 0.999 for ViTs (the paper's Table 12).</summary>
    public double Beta2 { get; init; } = 0.95;
    /// <summary>An image classifier's Mixup alpha (0: off).</summary>
    public double Mixup { get; init; }
    /// <summary>An image classifier's budget and batch in images (0 for a language model). Its token counts are these
    /// times the sequence length (patches and class token), so every cadence and the metrics' token axis work alike.</summary>
    public long ImageBudget { get; init; }
    public long BatchImages { get; init; }
}

/// <summary>A validated job: the model, the training plan, and the datasets by name (null: the shipped corpus).</summary>
public sealed record JobPlan(string Name, ModelConfig Model, TrainingPlan Training, string? TrainData,
    IReadOnlyList<string>? ValidationData, IReadOnlyList<string> Tags)
{
    /// <summary>In-loop downstream evaluation, when the spec asks for it.</summary>
    public EvaluationPlan? Evaluation { get; init; }

    /// <summary>Validation on a tail held out of the training dataset (<see cref="HcService.Contract.Data.HeldOut"/>):
    /// set when a spec names data.train without data.validation. Stored in the plan, so a run accepted before held-out
    /// tails existed keeps the validation sets it was accepted with.</summary>
    public bool HoldsOutValidation { get; init; }

    static readonly System.Text.Json.JsonSerializerOptions Json = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(System.Text.Json.JsonNamingPolicy.CamelCase) },
        IgnoreReadOnlyProperties = true,   // derived values (labels, counts, the default datasets) are computed again
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The plan as the run store keeps it (runs.Plan): what the training and evaluation processes run.</summary>
    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, Json);

    /// <summary>The plan a training or evaluation process runs: the one stored at submission, or, for a run submitted
    /// before plans were stored (<paramref name="storedPlan"/> null), its spec resolved as it was then accepted.</summary>
    public static JobPlan Stored(string? storedPlan, JobSpec spec, DeviceKind device) =>
        storedPlan is { } json ? FromJson(json) : Resolve(spec, device, submission: false);

    /// <summary>A plan stored by <see cref="ToJson"/>.</summary>
    public static JobPlan FromJson(string json) =>
        System.Text.Json.JsonSerializer.Deserialize<JobPlan>(json, Json) ?? throw new InvalidDataException("the stored job plan is null");

    /// <summary>The training dataset: the spec's, else the shipped corpus for the model's vocabulary.</summary>
    public string TrainSet => TrainData ?? (Model.IsVision ? DefaultImageDataset : HcService.Contract.Data.DataCatalog.ShippedDefaults(Model.Vocab).Train);

    /// <summary>An image classifier's default dataset, which the setup script installs under the data root.</summary>
    public const string DefaultImageDataset = "fashion-mnist";

    /// <summary>The validation datasets under the data root: the spec's; none when the training dataset holds out its own
    /// tail; else the shipped held-out sets for the model's vocabulary.</summary>
    public IReadOnlyList<string> ValidationSets => ValidationData ?? (HoldsOutValidation || Model.IsVision ? [] : HcService.Contract.Data.DataCatalog.ShippedDefaults(Model.Vocab).Validation);

    /// <summary>The names validation reports its metrics under (val/{name}/loss): the validation datasets, or the
    /// training dataset's held-out tail.</summary>
    public IReadOnlyList<string> ValidationNames => Model.IsVision ? [TestSplitName(TrainSet)]
        : HoldsOutValidation ? [HcService.Contract.Data.HeldOut.Name(TrainSet)] : ValidationSets;

    /// <summary>What an image dataset's test split is reported as (val/{name}/top1).</summary>
    public static string TestSplitName(string dataset) => dataset + ".test";

    public const long MaxTokenBudget = 100_000_000_000_000;

    /// <summary>What a spec's task may be: language-modeling (the default) or image-classification.</summary>
    public static IReadOnlyList<string> Tasks { get; } = ["language-modeling", "image-classification"];
    /// <summary>An image budget's ceiling: 1T images (the paper's ViT-L/16 run sees 384M).</summary>
    public const long MaxImageBudget = 1_000_000_000_000;

    /// <summary>Validates <paramref name="spec"/> and fills in every default. Throws <see cref="ConfigException"/>
    /// listing every invalid field (the field, the value, what is allowed).</summary>
    /// <param name="submission">False for a spec already stored (a run from before plans were stored): the rules for
    /// labels (printable names and tags), which may have tightened since it was accepted, are not applied again.</param>
    public static JobPlan Resolve(JobSpec spec, DeviceKind device = DeviceKind.Cpu, bool submission = true) =>
        new Resolver(spec, device, submission).Plan();

    /// <summary>One resolution: each part of the spec in its own method, every error collected, in the spec's order.</summary>
    sealed class Resolver(JobSpec spec, DeviceKind device, bool submission)
    {
        readonly List<ConfigError> errors = [];

        void Need(bool ok, string field, object? value, string allowed) { if (!ok) errors.Add(new(field, value, allowed)); }

        public JobPlan Plan()
        {
            var model = Model();
            var training = Training(model);
            Need(!(model.IsVision && spec.Evaluation is not null), "evaluation", "(given)",
                "absent for image-classification (downstream zero-shot tasks score a language model; a ViT's test split is its validation)");
            var evaluation = model.IsVision ? null : Evaluation(training);
            Labels();
            if (errors.Count > 0) throw new ConfigException(errors);
            var name = spec.Name ?? $"{model.Name}-{(model.Architecture == Architecture.Moe ? "moe-" : "")}{model.Connection.Label}";
            return new JobPlan(name, model, training, spec.Data?.Train, spec.Data?.Validation, spec.Tags ?? [])
            {
                Evaluation = evaluation,
                // A dataset of one's own with no validation sets named validates on its own tail (never on the shipped
                // sets, which another data root may not have). Not for a stored spec resolved again: it was accepted without.
                HoldsOutValidation = submission && !model.IsVision && spec.Data?.Train is not null && spec.Data.Validation is null,
            };
        }

        /// <summary>The preset with its overrides, architecture, connection and MoE settings. The four required fields
        /// are checked first: without them nothing else can be resolved.</summary>
        ModelConfig Model()
        {
            ModelConfig? preset = null;
            var presetName = spec.Model?.Preset;
            if (presetName is null) errors.Add(new("model.preset", null, "one of " + string.Join(", ", Presets.All.Keys)));
            else if (!Presets.All.TryGetValue(presetName, out preset)) errors.Add(new("model.preset", presetName, "one of " + string.Join(", ", Presets.All.Keys)));
            bool? vision = spec.Task switch { null or "language-modeling" => false, "image-classification" => true, _ => null };
            Need(vision is not null, "task", spec.Task, string.Join(" or ", Tasks));
            if (preset is not null && vision is { } v && preset.IsVision != v)
                errors.Add(new("model.preset", presetName, v
                    ? "a vision preset for task image-classification: " + string.Join(", ", Presets.All.Where(p => p.Value.IsVision).Select(p => p.Key))
                    : "a language-model preset (" + string.Join(", ", Presets.All.Where(p => !p.Value.IsVision).Select(p => p.Key)) + "); the vit-* presets need \"task\": \"image-classification\""));

            var arch = spec.Architecture switch
            {
                "dense" => Architecture.Dense,
                "moe" => Architecture.Moe,
                _ => (Architecture?)null,
            };
            Need(arch is not null, "architecture", spec.Architecture, "dense or moe");

            ConnectionType connType = default;
            var conn = spec.Connection;
            Need(conn?.Type is not null && Names.TryParseConnection(conn.Type, out connType), "connection.type", conn?.Type, "one of " + string.Join(", ", Names.Connections));
            var copies = connType is ConnectionType.StaticHc or ConnectionType.DynamicHc or ConnectionType.Mhc or ConnectionType.MhcLite;
            var mhcInit = MhcInit.Identity;
            if (conn?.MhcInit is { } init)
            {
                var i = Names.MhcInits.ToList().FindIndex(n => string.Equals(n, init, StringComparison.OrdinalIgnoreCase));
                Need(i >= 0, "connection.mhcInit", init, "one of " + string.Join(", ", Names.MhcInits));
                if (i >= 0) mhcInit = (MhcInit)i;
            }
            // Fields of one connection type given for another: named, never ignored.
            Need(conn?.Fractions is null || connType == ConnectionType.Frac, "connection.fractions", conn?.Fractions, "absent: only frac takes fractions");
            Need(conn?.Dynamic is null || connType == ConnectionType.Frac, "connection.dynamic", conn?.Dynamic, "absent: only frac takes dynamic (static-hc and dynamic-hc are separate types)");
            Need(conn?.MhcInit is null || connType is ConnectionType.Mhc or ConnectionType.MhcLite, "connection.mhcInit", conn?.MhcInit, "absent: only mhc and mhc-lite take mhcInit");
            Need(conn?.SinkhornIterations is null || connType == ConnectionType.Mhc, "connection.sinkhornIterations", conn?.SinkhornIterations, "absent: only mhc takes sinkhornIterations");
            var connection = new ConnectionConfig
            {
                Type = connType,
                Rate = conn?.Rate ?? (copies ? 4 : 1),
                Tanh = conn?.Tanh ?? true,
                // Explicit in the stored plan, so that a later change of the default cannot change a queued run's init.
                // (Only where it applies: n copies of the state; elsewhere it would read as a confound that changes nothing.)
                ScaleOutputInit = copies && (conn?.ScaleOutputInit ?? false),
                Fractions = conn?.Fractions ?? (connType == ConnectionType.Frac ? 4 : 1),
                Dynamic = conn?.Dynamic ?? true,
                MhcInit = mhcInit,
                SinkhornIterations = conn?.SinkhornIterations ?? 20,
            };
            if (vision == true)
            {
                Need(spec.Training?.ImageBudget is not null, "training.imageBudget", null, "a number of images such as 600000 or \"600K\" (image-classification is budgeted in images)");
                Need(spec.Training?.TokenBudget is null, "training.tokenBudget", spec.Training?.TokenBudget, "absent for image-classification: use training.imageBudget");
            }
            else
            {
                Need(spec.Training?.TokenBudget is not null, "training.tokenBudget", null, "a token count such as 2000000 or \"2M\"");
                foreach (var (field, value) in new (string, object?)[] { ("training.imageBudget", spec.Training?.ImageBudget), ("training.batchImages", spec.Training?.BatchImages), ("training.mixup", spec.Training?.Mixup) })
                    Need(value is null, field, value, "absent for language-modeling (a field of \"task\": \"image-classification\")");
            }

            if (preset is null || arch is null || errors.Count > 0) throw new ConfigException(errors);

            var overrides = spec.Model!.Overrides ?? new ModelOverrides();
            if (preset.IsVision)
            {
                foreach (var (field, value) in new (string, object?)[] { ("model.overrides.maxSeqLen", overrides.MaxSeqLen), ("model.overrides.vocab", overrides.Vocab),
                    ("model.overrides.embeddingSize", overrides.EmbeddingSize), ("model.overrides.experts", overrides.Experts), ("model.overrides.topK", overrides.TopK),
                    ("model.overrides.expertHidden", overrides.ExpertHidden) })
                    Need(value is null, field, value, "absent for a vision preset (its sequence is its patches; its classes, its head)");
                Need(spec.Data?.Validation is null, "data.validation", spec.Data?.Validation is { } names ? string.Join(",", names) : null,
                    "absent for image-classification: the training dataset's test split is the validation set");
            }
            if (overrides.MaxSeqLen is { } seq)
                Need(seq <= preset.MaxSeqLen, "model.overrides.maxSeqLen", seq, $"<= the preset's maximum {preset.MaxSeqLen}");
            var model = overrides.Apply(preset) with { Architecture = arch.Value, Connection = connection };
            if (spec.Moe is { } moe)
                model = model with
                {
                    Moe = model.Moe with
                    {
                        Experts = moe.Experts ?? model.Moe.Experts,
                        TopK = moe.TopK ?? model.Moe.TopK,
                        ExpertHidden = moe.ExpertHidden ?? model.Moe.ExpertHidden,
                        LoadBalancingCoef = moe.LoadBalancingCoef ?? model.Moe.LoadBalancingCoef,
                        RouterZLossCoef = moe.RouterZLossCoef ?? model.Moe.RouterZLossCoef,
                    },
                };
            errors.AddRange(model.Validate());
            return model;
        }

        /// <summary>Batch, steps, schedule, precision, optimiser, validation and checkpoint cadence, from the spec and
        /// the preset's training defaults.</summary>
        TrainingPlan Training(ModelConfig model)
        {
            var tr = spec.Training!;
            var d = Presets.TrainingOf(model.Name, model.MaxSeqLen);
            var vision = model.IsVision ? VisionTrainingDefaults.For(model.Name) : null;
            var seqLen = model.MaxSeqLen;
            int micro;
            long batchTokens, budget, steps, batchImages = 0, images = 0;
            // A budget unit in tokens: 1 for a language model, one image's sequence for a ViT.
            long unit = vision is null ? 1 : seqLen;
            string unitName = vision is null ? "batchTokens" : "batchImages";
            if (vision is null)
            {
                micro = tr.MicroBatch ?? d.MicroBatch;
                Need(micro >= 1, "training.microBatch", micro, "an integer >= 1");
                var microTokens = (long)Math.Max(micro, 1) * seqLen;
                batchTokens = tr.BatchTokens?.Value ?? Math.Max(d.BatchTokens, microTokens) / microTokens * microTokens;
                Need(batchTokens >= microTokens && batchTokens % microTokens == 0, "training.batchTokens", batchTokens,
                    $"a positive multiple of microBatch x sequence length = {micro} x {seqLen} = {microTokens}");
                budget = tr.TokenBudget!.Value.Value;
                steps = batchTokens > 0 ? budget / batchTokens : 0;
                Need(steps >= 1, "training.tokenBudget", budget, $">= one step of batchTokens = {batchTokens}");
                Need(budget <= MaxTokenBudget, "training.tokenBudget", budget, $"at most {MaxTokenBudget:N0} tokens (100T; the paper's largest run is 1T)");
            }
            else
            {
                micro = tr.MicroBatch ?? vision.MicroBatch;
                Need(micro >= 1, "training.microBatch", micro, "an integer >= 1 (images per forward pass)");
                batchImages = tr.BatchImages ?? Math.Max(vision.BatchImages, Math.Max(micro, 1)) / Math.Max(micro, 1) * Math.Max(micro, 1);
                Need(batchImages >= micro && micro >= 1 && batchImages % micro == 0, "training.batchImages", batchImages, $"a positive multiple of microBatch = {micro}");
                images = tr.ImageBudget!.Value.Value;
                Need(images <= MaxImageBudget, "training.imageBudget", images, $"at most {MaxImageBudget:N0} images");
                images = Math.Min(images, MaxImageBudget);
                steps = batchImages > 0 ? images / batchImages : 0;
                Need(steps >= 1, "training.imageBudget", images, $">= one step of batchImages = {batchImages}");
                Need(tr.BatchTokens is null, "training.batchTokens", tr.BatchTokens, "absent for image-classification: use training.batchImages");
                Need(tr.EvalTokens is null, "training.evalTokens", tr.EvalTokens, "absent for image-classification: validation scores the whole test split");
                budget = images * seqLen;
                batchTokens = batchImages * seqLen;
            }
            var microTokensOfPlan = (long)Math.Max(micro, 1) * seqLen;

            var schedule = tr.Schedule switch
            {
                null or "cosine" => LrScheduleKind.Cosine,
                "linear" => LrScheduleKind.Linear,
                "constant" => LrScheduleKind.Constant,
                _ => (LrScheduleKind?)null,
            };
            Need(schedule is not null, "training.schedule", tr.Schedule, "cosine, linear or constant");
            var precision = tr.Precision switch
            {
                null => device == DeviceKind.Cuda ? Precision.Bf16 : Precision.Fp32,
                "fp32" => Precision.Fp32,
                "bf16" => Precision.Bf16,
                _ => (Precision?)null,
            };
            Need(precision is not null, "training.precision", tr.Precision, "fp32 or bf16");
            Need(!(precision == Precision.Bf16 && device == DeviceKind.Cpu), "training.precision", tr.Precision,
                "fp32 on a CPU worker (bf16 mixed precision runs on CUDA)");

            var recompute = tr.Recompute switch
            {
                null or "none" => RecomputeMode.None,
                "hc" => RecomputeMode.Hc,
                "block" => RecomputeMode.Block,
                _ => (RecomputeMode?)null,
            };
            Need(recompute is not null, "training.recompute", tr.Recompute, "none, hc or block");
            Need(!(recompute == RecomputeMode.Block && model.IsMoe), "training.recompute", tr.Recompute,
                "none or hc with moe (block recomputation would lose the router's auxiliary-loss gradients)");
            Need(!(recompute == RecomputeMode.Block && model.Dropout > 0 && device == DeviceKind.Cuda), "training.recompute", tr.Recompute,
                "none or hc with dropout on cuda (a recomputed block would draw other dropout masks)");

            var lr = tr.Lr ?? vision?.Lr ?? d.Lr;
            Need(lr > 0 && lr < 1, "training.lr", lr, "a number in (0, 1)");
            // Language models: at most 2000 steps and a tenth of the run; ViTs: the preset's (the paper's 10k) and a fifth.
            var warmup = tr.WarmupSteps ?? (int)(vision is null ? Math.Min(2000, Math.Max(1, (steps + 9) / 10)) : Math.Min(vision.WarmupSteps, Math.Max(1, (steps + 4) / 5)));
            Need(warmup >= 0 && warmup <= Math.Max(steps, 0), "training.warmupSteps", warmup, $"an integer in [0, steps = {steps}]");
            var minLr = tr.MinLrRatio ?? 0.1;
            Need(minLr is >= 0 and <= 1, "training.minLrRatio", minLr, "a number in [0, 1]");
            var wd = tr.WeightDecay ?? vision?.WeightDecay ?? 0.1;
            var mixup = tr.Mixup ?? vision?.Mixup ?? 0;
            Need(mixup is >= 0 and <= 10, "training.mixup", mixup, "a number in [0, 10] (0: no Mixup)");
            Need(wd >= 0, "training.weightDecay", wd, ">= 0");
            var clip = tr.GradClip ?? 1.0;
            Need(clip >= 0, "training.gradClip", clip, ">= 0 (0 disables clipping)");
            var keep = tr.CheckpointsToKeep ?? 3;
            Need(keep >= 1, "training.checkpointsToKeep", keep, "an integer >= 1");
            var evalTokens = vision is not null ? seqLen : tr.EvalTokens?.Value ?? 65_536;
            Need(evalTokens >= seqLen, "training.evalTokens", evalTokens, $">= one sequence ({seqLen} tokens)");
            var evalEvery = Every(tr.EvalInterval, "training.evalInterval", budget / 10, batchTokens, unit, unitName);
            var ckptEvery = Every(tr.CheckpointInterval, "training.checkpointInterval", budget / 5, batchTokens, unit, unitName);

            return new TrainingPlan
            {
                TokenBudget = budget,
                BatchTokens = batchTokens,
                MicroBatch = micro,
                SeqLen = seqLen,
                Accumulation = (int)(batchTokens / microTokensOfPlan),
                Steps = steps,
                Lr = lr,
                // The fallbacks never reach a plan: an invalid value has added its error, which Plan() throws.
                Schedule = schedule ?? LrScheduleKind.Cosine,
                WarmupSteps = warmup,
                MinLrRatio = minLr,
                WeightDecay = wd,
                GradClip = clip,
                Precision = precision ?? Precision.Fp32,
                Seed = tr.Seed ?? 1,
                EvalEverySteps = evalEvery,
                EvalTokens = evalTokens,
                CheckpointEverySteps = ckptEvery,
                CheckpointsToKeep = keep,
                Recompute = recompute ?? RecomputeMode.None,
                Beta2 = vision is null ? 0.95 : 0.999,
                Mixup = mixup,
                ImageBudget = images,
                BatchImages = batchImages,
            };
        }

        /// <summary>A cadence in tokens (or in images, <paramref name="unit"/> tokens each) as optimizer steps (at least one
        /// step; a given interval of less is an error).</summary>
        long Every(TokenCount? interval, string field, long fallbackTokens, long batchTokens, long unit = 1, string unitName = "batchTokens")
        {
            var tokens = interval is { } i ? (i.Value > long.MaxValue / unit ? long.MaxValue : i.Value * unit) : fallbackTokens;
            Need(tokens >= batchTokens || interval is null, field, interval?.Value ?? tokens, $">= one step of {unitName} = {batchTokens / unit}");
            return Math.Max(1, tokens / Math.Max(batchTokens, 1));
        }

        /// <summary>In-loop downstream evaluation, when the spec asks for it.</summary>
        EvaluationPlan? Evaluation(TrainingPlan training)
        {
            if (spec.Evaluation is not { } ev) return null;
            var tasks = ev.Tasks ?? [];
            Need(tasks.Count is >= 1 and <= 64, "evaluation.tasks", tasks.Count, "a list of 1 to 64 tasks (names such as arc_easy, or {\"name\", \"file\"})");
            for (var i = 0; i < tasks.Count; i++)
            {
                var task = tasks[i];
                if (task is null || string.IsNullOrWhiteSpace(task.Name)) { Need(false, $"evaluation.tasks[{i}].name", task?.Name, "a task name"); continue; }
                Need(task.File is not null || HcService.Contract.Evaluation.EvalTasks.Known.ContainsKey(task.Name), $"evaluation.tasks[{i}].name", task.Name,
                    $"one of the known tasks ({string.Join(", ", HcService.Contract.Evaluation.EvalTasks.Known.Keys)}), or any name with a file");
                Need(task.Limit is null or >= 1, $"evaluation.tasks[{i}].limit", task.Limit, "an integer >= 1");
                Need(task.Name.Length <= 100 && (!submission || Text.IsPrintable(task.Name)), $"evaluation.tasks[{i}].name", task.Name, "a name of at most 100 printable characters");
                Need(task.File is null || (task.File.Length <= 1024 && Text.IsPrintable(task.File)), $"evaluation.tasks[{i}].file", task.File,
                    "a path under the data root of at most 1024 printable characters (no NUL or other control characters)");
            }
            // Results are stored by (step, task, metric): a name twice, or "average" (the stored mean), would collide.
            var names = tasks.Where(t => t?.Name is not null).Select(t => t!.Name!).ToList();
            Need(names.Distinct(StringComparer.Ordinal).Count() == names.Count && !names.Contains("average"), "evaluation.tasks",
                string.Join(",", names), "tasks with distinct names, none named \"average\" (the stored mean of the tasks)");
            Need(ev.Limit is null or (>= 1 and <= 1_000_000), "evaluation.limit", ev.Limit, "an integer in [1, 1000000], or absent for every item");
            Need(ev.BatchSize is null or (>= 1 and <= 1024), "evaluation.batchSize", ev.BatchSize, "an integer in [1, 1024]");
            return new EvaluationPlan([.. tasks.Where(t => t is not null).Select(t => t with { Limit = t.Limit ?? ev.Limit })],
                Every(ev.Interval, "evaluation.interval", training.TokenBudget, training.BatchTokens), ev.BatchSize ?? 16);
        }

        /// <summary>The dataset name, tags and run name: what people read.</summary>
        void Labels()
        {
            if (spec.Data?.Train is { } train) Need(!string.IsNullOrWhiteSpace(train), "data.train", train, "a dataset name");
            bool Label(string s) => !submission || Text.IsPrintable(s);
            if (spec.Tags is { } tags) Need(tags.Count <= 32 && tags.All(t => !string.IsNullOrWhiteSpace(t) && t.Length <= 64 && Label(t)), "tags",
                Shorten(string.Join(",", tags)), "at most 32 non-empty strings of at most 64 printable characters (no control, bidi-override or zero-width characters)");
            if (spec.Name is { } runName) Need(runName.Length is > 0 and <= 200 && Label(runName), "name", Shorten(runName),
                "a non-empty name of at most 200 printable characters (no control, bidi-override or zero-width characters)");
        }

        static string Shorten(string s) => s.Length > 80 ? s[..80] + $"... ({s.Length} characters)" : s;
    }
}

/// <summary>The device queues runs wait on: one per device kind, named as the device.</summary>
public static class DeviceQueues
{
    public const string Cpu = "cpu";
    public const string Cuda = "cuda";

    public static string Of(DeviceKind device) => device == DeviceKind.Cuda ? Cuda : Cpu;

    /// <summary>The device of a run's queue (any queue other than cuda trains on the CPU).</summary>
    public static DeviceKind DeviceOf(string queue) => queue == Cuda ? DeviceKind.Cuda : DeviceKind.Cpu;

    /// <summary>The device of a queue named by a client (absent: cpu); null for a name that is no queue.</summary>
    public static DeviceKind? Parse(string? queue) => queue switch { null or Cpu => DeviceKind.Cpu, Cuda => DeviceKind.Cuda, _ => null };

    /// <summary>What a client may name as a queue, for error messages.</summary>
    public const string Allowed = $"{Cpu} or {Cuda}";
}
