using System.Diagnostics;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Core.Counting;
using HcService.Contract.Data;
using HcService.Core.Data;
using HcService.Contract.Evaluation;
using HcService.Core.Evaluation;
using HcService.Contract.Jobs;
using HcService.Core.Model;
using HcService.Core.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Training;

/// <summary>Where and how a run executes (not part of the job spec).</summary>
/// <param name="DataRoot">Folder of named datasets.</param>
/// <param name="OutDir">Run folder: checkpoints/ and metrics.jsonl go here; a run resumes from its checkpoints.</param>
/// <param name="PeakFlops">Device peak FLOP/s for the MFU estimate.</param>
public sealed record RunOptions(string DataRoot, string OutDir, DeviceKind Device = DeviceKind.Cpu, double PeakFlops = 100e9)
{
    /// <summary>Consecutive non-finite losses that end the run (the divergence guard).</summary>
    public int MaxNonFiniteSteps { get; init; } = 3;
    /// <summary>Sample HC statistics every this many steps.</summary>
    public int HcStatsEvery { get; init; } = 10;
    /// <summary>Sequences per validation forward pass.</summary>
    public int ValidationBatch { get; init; } = 8;
    /// <summary>Checkpoint and stop after this step (a planned interruption: preemptible machines, resume tests).</summary>
    public long? StopAfterStep { get; init; }
}

/// <summary>How a training loop ended.</summary>
public enum RunOutcome
{
    /// <summary>The token budget was reached.</summary>
    Succeeded,
    /// <summary>Divergence, or an error in the spec or the data.</summary>
    Failed,
    /// <summary>Stopped before the end after a checkpoint of the current step: a cancel, a stop request (the worker is
    /// stopping: the run is handed back), or <see cref="RunOptions.StopAfterStep"/>.</summary>
    Stopped,
    /// <summary>Stopped at once without a checkpoint: a newer attempt has the run.</summary>
    Abandoned,
}

public sealed record RunResult(RunOutcome Outcome, long Step, long Tokens, string? Reason, IReadOnlyList<ValidationMetrics> Validation);

/// <summary>
/// Runs one job plan (resolved from its spec by the API, or by `hc train`) to its token budget: data, model, optimizer, schedule, validation, checkpoints, resume.
/// Each concern lives in its own type (<see cref="WindowSampler"/>, <see cref="LrSchedule"/>, <see cref="TrainStep"/>,
/// <see cref="CheckpointStore"/>, <see cref="IMetricsSink"/>); this class only sequences them.
/// </summary>
/// <param name="spec">The spec the plan was resolved from: the identity of the run folder's checkpoints (a folder of another
/// spec is refused).</param>
public sealed partial class TrainingRun(JobSpec spec, JobPlan plan, RunOptions options, IReadOnlyList<IMetricsSink> sinks, Action<string>? log = null)
{
    /// <summary>Where a run folder keeps its checkpoints.</summary>
    public static string CheckpointFolder(string outDir) => Path.Combine(outDir, "checkpoints");

    /// <param name="cancel">Stop after a final checkpoint (a cancel, or a preempted worker).</param>
    /// <param name="abandon">Stop at once without a checkpoint: another attempt has taken the run over, and this one must
    /// not write into its checkpoint folder any more.</param>
    public RunResult Run(CancellationToken cancel = default, CancellationToken abandon = default)
    {
        var catalog = new DataCatalog(options.DataRoot);
        if (plan.Model.Vision is not null) return RunVision(catalog, cancel, abandon);
        using var data = OpenDataset(catalog, plan.TrainSet, "data.train", plan);
        var validation = plan.ValidationSets.Select((name, i) => OpenDataset(catalog, name, $"data.validation[{i}]", plan)).ToList();
        try
        {
            var (train, heldOut) = Split(data, plan);
            if (heldOut is not null) validation.Add(heldOut);
            return Train(plan, train, validation, cancel, abandon);
        }
        finally
        {
            foreach (var v in validation) v.Dispose();
        }
    }

    /// <summary>The training stream and, when the plan holds out validation, the tail it holds out (docs/design.md, "Data").</summary>
    public static (TokenDataset Train, TokenDataset? HeldOut) Split(TokenDataset data, JobPlan plan)
    {
        if (!plan.HoldsOutValidation) return (data, null);
        var t = plan.Training;
        var (train, validation) = HeldOut.Split(data.Length, t.SeqLen, t.EvalTokens)
            ?? throw new ConfigException([DatasetFit.TooShortToHoldOut(data, plan.TrainSet, t.SeqLen)]);
        return (data.Slice(0, train, data.Name), data.Slice(train, validation, HeldOut.Name(plan.TrainSet)));
    }

    static TokenDataset OpenDataset(DataCatalog catalog, string name, string field, JobPlan plan)
    {
        var data = new TokenDataset(catalog.Resolve(name, field));
        if (DatasetFit.Check(data, name, field, plan, sampleIds: false) is { } misfit)
        {
            data.Dispose();
            throw new ConfigException([misfit]);
        }
        return data;
    }

    RunResult Train(JobPlan plan, TokenDataset train, IReadOnlyList<TokenDataset> validation, CancellationToken cancel, CancellationToken abandon)
    {
        var t = plan.Training;
        WindowSampler? sampler = null;
        return Loop(plan, position =>
            {
                sampler = new WindowSampler(train, t.SeqLen, t.Seed, position);
                return (device => TrainStep.NextBatch(sampler, t.MicroBatch, t.SeqLen, device), () => sampler.Position);
            },
            validation.Count == 0 ? null : (model, step, tokens, device) => validation.Select(v => Evaluate(model, v, t, step, tokens, device)).ToList(),
            plan.Evaluation is { } ev ? () => Downstream(plan, ev, train) : null, cancel, abandon);
    }

    /// <summary>The batches a run trains on, made from its resume position: the next micro-batch on a device, and where the
    /// stream is (saved in checkpoints).</summary>
    delegate (Func<Device, (Tensor Inputs, Tensor Targets)> Next, Func<SamplerPosition> Position) BatchSource(SamplerPosition start);

    /// <summary>One validation of every set: the model, step, tokens, device.</summary>
    delegate List<ValidationMetrics> Validation(LanguageModel model, long step, long tokens, Device device);

    /// <summary>The training loop every task shares: init or resume, steps with the schedule, validation and downstream
    /// evaluation on their cadences, checkpoints, stop and abandon.</summary>
    RunResult Loop(JobPlan plan, BatchSource batches, Validation? validate, Func<DownstreamEvaluator>? makeDownstream,
        CancellationToken cancel, CancellationToken abandon)
    {
        var t = plan.Training;
        var device = options.Device == DeviceKind.Cuda ? CUDA : CPU;
        manual_seed(t.Seed);
        using var model = new LanguageModel(plan.Model);
        model.to(device);
        using var optimizer = Optimizers.AdamW(model, t.Lr, t.WeightDecay, beta2: t.Beta2);
        using var mixed = t.Precision == Precision.Bf16 ? new MixedPrecision(model, device) : null;
        model.Recompute = t.Recompute;
        if (mixed is not null) mixed.Compute.Recompute = t.Recompute;
        var store = new CheckpointStore(CheckpointFolder(options.OutDir));
        var specJson = spec.ToJson();

        long step = 0, tokens = 0;
        var nonFinite = 0;
        var position = default(SamplerPosition);
        if (store.LatestVerified(msg => log?.Invoke(msg)) is { } latest)
        {
            var state = CheckpointStore.Load(latest.Path, model, optimizer);
            if (state.Spec != specJson)
                throw new ConfigException([new("out", options.OutDir, "a run folder of this spec (it holds checkpoints of a different spec); use a new --out")]);
            mixed?.WeightsToCompute();
            (step, tokens, nonFinite) = (state.Step, state.Tokens, state.ConsecutiveNonFinite);
            position = new SamplerPosition(state.SamplerEpoch, state.SamplerIndex);
            set_rng_state(tensor(Convert.FromBase64String(state.RngState)));
            log?.Invoke($"resumed from {Path.GetFileName(latest.Path)}: step {step}, {tokens} tokens");
        }
        var (nextBatch, samplerPosition) = batches(position);
        var downstream = makeDownstream?.Invoke();
        var flopsPerToken = ModelCounter.Flops(plan.Model, t.SeqLen).Training;
        var lastValidation = new List<ValidationMetrics>();
        long lastCheckpointStep = step;

        CheckpointRecord Checkpoint()
        {
            foreach (var s in sinks) s.BeforeCheckpoint(step);
            var record = store.Save(new CheckpointState
            {
                Step = step, Tokens = tokens, SamplerEpoch = samplerPosition().Epoch, SamplerIndex = samplerPosition().Index,
                RngState = Convert.ToBase64String(get_rng_state().bytes.ToArray()), ConsecutiveNonFinite = nonFinite, Spec = specJson,
            }, model, optimizer, t.CheckpointsToKeep);
            lastCheckpointStep = step;
            foreach (var s in sinks) s.OnCheckpoint(record);
            return record;
        }

        void Validate()
        {
            if (validate is null) return;
            Phase(plan.Model.IsVision ? $"validating at step {step}: {string.Join(", ", plan.ValidationNames)} (every image)"
                : string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"validating at step {step}: {string.Join(", ", plan.ValidationNames)} (up to {t.EvalTokens:N0} tokens each)"));
            lastValidation = validate(mixed?.Compute ?? model, step, tokens, device);
            foreach (var m in lastValidation) foreach (var s in sinks) s.OnValidation(m);
        }

        void Phase(string message) { foreach (var s in sinks) s.OnPhase(message); }

        if (step == 0) Validate();   // the initial loss: every curve starts from it
        while (step < t.Steps)
        {
            if (abandon.IsCancellationRequested)
                return new RunResult(RunOutcome.Abandoned, step, tokens, "abandoned without a checkpoint: a newer attempt has the run", lastValidation);
            var stopHere = options.StopAfterStep is { } stop && step >= stop;
            if (cancel.IsCancellationRequested || stopHere)
            {
                if (step > lastCheckpointStep) Checkpoint();
                return new RunResult(RunOutcome.Stopped, step, tokens, stopHere ? $"stopped after step {step} as asked" : "cancelled", lastValidation);
            }
            var lr = LrSchedule.At(t, step);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            var sw = Stopwatch.StartNew();
            var result = TrainStep.Run(model, optimizer, _ => nextBatch(device), t.Accumulation, t.GradClip, mixed);
            var seconds = sw.Elapsed.TotalSeconds;
            step++;
            tokens += t.BatchTokens;
            nonFinite = result.Applied ? 0 : nonFinite + 1;

            var tps = t.BatchTokens / seconds;
            var metrics = new StepMetrics
            {
                Step = step, Tokens = tokens, Loss = result.Loss, CrossEntropy = result.CrossEntropy, Lr = lr, GradNorm = result.GradNorm,
                StepSeconds = seconds, TokensPerSecond = tps, Mfu = flopsPerToken * tps / options.PeakFlops,
                LoadBalancingLoss = result.LoadBalancing, RouterZLoss = result.RouterZ,
                ExpertTokens = result.ExpertTokens.Count > 0 ? result.ExpertTokens : null,
                Hc = plan.Model.Connection.CopiesStreams && (step % options.HcStatsEvery == 0 || step == t.Steps) ? HcStatistics.Of(model) : null,
            };
            foreach (var s in sinks) s.OnStep(metrics);

            if (nonFinite >= options.MaxNonFiniteSteps)
                return new RunResult(RunOutcome.Failed, step, tokens,
                    $"diverged: the loss was not finite for {nonFinite} consecutive steps (last: {result.Loss} at step {step}); updates were skipped", lastValidation);
            if (step % t.EvalEverySteps == 0 || step == t.Steps) Validate();
            if (downstream is not null && (step % plan.Evaluation!.EverySteps == 0 || step == t.Steps))
            {
                Phase($"downstream evaluation at step {step}: {string.Join(", ", plan.Evaluation!.Tasks.Select(x => x.Name))}");
                var results = downstream.Evaluate(mixed?.Compute ?? model, log);
                model.train();
                foreach (var s in sinks) s.OnEvaluation(new HcService.Core.Evaluation.EvaluationMetrics(step, tokens, results));
            }
            if (abandon.IsCancellationRequested)   // never write into a folder another attempt now owns
                return new RunResult(RunOutcome.Abandoned, step, tokens, "abandoned without a checkpoint: a newer attempt has the run", lastValidation);
            if (step % t.CheckpointEverySteps == 0 || step == t.Steps) Checkpoint();
        }
        return new RunResult(RunOutcome.Succeeded, step, tokens, null, lastValidation);
    }

    /// <summary>The in-loop evaluator: tasks read once (a bad task file fails the run before it trains), scored with the
    /// training data's tokenizer.</summary>
    DownstreamEvaluator Downstream(JobPlan plan, EvaluationPlan ev, TokenDataset train)
    {
        var tokenizerName = train.Manifest.Tokenizer;
        if (tokenizerName is not ("gpt2" or "bytes"))
            throw new ConfigException([new("evaluation", tokenizerName, "a training dataset whose manifest names its tokenizer (gpt2 or bytes), to tokenize the tasks")]);
        return new DownstreamEvaluator(DownstreamEvaluator.Load(options.DataRoot, ev.Tasks, null), TextTokenizers.Create(tokenizerName), ev.BatchSize);
    }

    /// <summary>Mean next-token loss over the set's first EvalTokens tokens (fixed, unshuffled windows) and its perplexity.</summary>
    ValidationMetrics Evaluate(LanguageModel model, TokenDataset data, TrainingPlan t, long step, long tokens, Device device)
    {
        model.eval();
        using var _ = no_grad();
        double sum = 0;
        long count = 0;
        foreach (var windows in WindowSampler.Sequential(data, t.SeqLen, t.EvalTokens, options.ValidationBatch))
        {
            using var scope = NewDisposeScope();
            var n = windows.Length / (t.SeqLen + 1);
            var batch = tensor(windows).reshape(n, t.SeqLen + 1).to(device);
            var output = model.Forward(batch.narrow(1, 0, t.SeqLen));
            var V = output.Logits.shape[^1];
            var loss = nn.functional.cross_entropy(output.Logits.reshape(-1, V).to_type(ScalarType.Float32),
                batch.narrow(1, 1, t.SeqLen).reshape(-1), reduction: nn.Reduction.Sum);
            sum += loss.item<float>();
            count += n * t.SeqLen;
        }
        var mean = sum / count;
        return new ValidationMetrics(step, tokens, data.Name, mean, Math.Exp(mean), count);
    }
}
