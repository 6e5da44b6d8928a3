using HcService.Store;
using HcService.Contract.Metrics;
using HcService.Store.Runs;
using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Contract.Jobs;

namespace HcService.Api.Runs;

/// <summary>Turns a submitted spec into a plan, or every error: the spec's own rules (JobPlan), the datasets, which
/// must exist under the data root and fit the model's vocabulary, and memory: a run whose estimated training memory
/// does not fit its device is rejected with the estimate, rather than dying of OOM on a worker hours later.</summary>
public sealed class SpecValidator(HcService.Store.HcPaths paths, DeviceMemory memory)
{
    public (JobPlan? Plan, IReadOnlyList<ConfigError> Errors) Validate(JobSpec spec, DeviceKind device)
    {
        JobPlan plan;
        try { plan = JobPlan.Resolve(spec, device); }
        catch (ConfigException e) { return (null, e.Errors); }

        var errors = new List<ConfigError>();
        var catalog = new DataCatalog(paths.DataRoot);
        if (plan.Model.Vision is { } vision)
        {
            // An image dataset of the model's shape (the IDX headers; no pixels are read here).
            try { ImageSplit.Fit(catalog, plan.TrainSet, vision, plan.Model.Name); }
            catch (ConfigException e) { errors.AddRange(e.Errors); }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                errors.Add(new("data.train", plan.TrainSet, $"a readable image dataset under the data root: {e.Message.Replace(catalog.Root, "<data root>", StringComparison.Ordinal)}"));
            }
            if (memory.Check(plan, device) is { } tooBigImage) errors.Add(tooBigImage);
            return errors.Count > 0 ? (null, errors) : (plan, []);
        }
        var names = new List<(string Field, string Name)> { ("data.train", plan.TrainSet) };
        names.AddRange(plan.ValidationSets.Select((n, i) => ($"data.validation[{i}]", n)));
        foreach (var (field, name) in names)
        {
            try
            {
                var folder = catalog.Resolve(name, field);
                // Opened as the training process will open it: manifest, file names by identity, .npy headers against
                // file sizes, the manifest's token count against the files; then the token ids of a sample.
                using var dataset = new TokenDataset(folder);
                if (DatasetFit.Check(dataset, name, field, plan, sampleIds: true) is { } misfit) errors.Add(misfit);
            }
            catch (ConfigException e) { errors.AddRange(e.Errors); }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or System.Text.Json.JsonException)
            {
                errors.Add(new(field, name, $"a readable token dataset under the data root: {e.Message.Replace(catalog.Root, "<data root>", StringComparison.Ordinal)}"));
            }
        }
        if (memory.Check(plan, device) is { } tooBig) errors.Add(tooBig);
        return errors.Count > 0 ? (null, errors) : (plan, []);
    }
}

/// <summary>
/// Device memory per queue, for the fit check: HC_CUDA_MEMORY_GIB (default 80, an 80 GB A100/H100; set 141 for
/// an H200) and HC_CPU_MEMORY_GIB (default: this host's memory). A run must fit in 90% of it (the rest is the
/// CUDA context, the allocator's fragmentation and the evaluation batch). Training here is single-device, so a model
/// whose weights and AdamW state alone exceed one device (OLMo-7B on 80 GB) is rejected with that reason.
/// </summary>
public sealed class DeviceMemory(HcSettings settings)
{
    const double Usable = 0.9;

    public long Bytes(DeviceKind device) => device == DeviceKind.Cuda
        ? (long)(settings.CudaMemoryGiB * (1L << 30))
        : settings.CpuMemoryGiB is { } gib ? (long)(gib * (1L << 30)) : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    public ConfigError? Check(JobPlan plan, DeviceKind device)
    {
        var t = plan.Training;
        var capacity = Bytes(device);
        HcService.Contract.Counting.MemoryEstimate estimate;
        try
        {
            estimate = HcService.Contract.Counting.ModelCounter.Memory(plan.Model with { MaxSeqLen = t.SeqLen }, t.MicroBatch, t.Precision == Precision.Bf16,
                eagerCpu: device == DeviceKind.Cpu, recompute: t.Recompute);
            _ = estimate.Total;
        }
        catch (OverflowException)
        {
            return new("training.microBatch", t.MicroBatch, $"a micro-batch whose training memory fits the {DeviceQueues.Of(device)} device: " +
                $"at {t.MicroBatch} x {t.SeqLen} tokens the estimate exceeds 2^63 bytes");
        }
        if (estimate.Total <= Usable * capacity) return null;
        static string GiB(long b) => (b / (double)(1L << 30)).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " GiB";
        return new("training.microBatch", t.MicroBatch,
            $"a micro-batch whose training memory fits the {DeviceQueues.Of(device)} device: the estimate is {GiB(estimate.Total)} " +
            $"(weights + AdamW state {GiB(estimate.WeightsAndOptimizer)}, activations {GiB(estimate.Activations)} at {t.MicroBatch} x {t.SeqLen} tokens) " +
            $"and {Usable:P0} of the device's {GiB(capacity)} is usable; lower training.microBatch (gradient accumulation keeps the batch) or pick a smaller model");
    }
}

/// <summary>
/// The wall-clock cap: a run whose estimated training time exceeds HC_MAX_RUN_DAYS (default 7) is refused, with the
/// estimate, instead of holding a worker for years ("100T" tokens on tiny). The rate is the device's measured one where
/// the service has it: the best training FLOP/s achieved by the latest succeeded runs of the same preset on the queue
/// (their tokens/s times their own FLOPs per token; a smaller model reaches fewer FLOP/s, so other presets are not
/// comparable), divided by this run's FLOPs per token. Without such runs it is an optimistic bound: 50% of
/// the device's peak (HC_CUDA_PEAK_TFLOPS, default 989, an H100/H200; HC_CPU_PEAK_GFLOPS, default 2000).
/// Both err towards letting a run through: only runs that cannot finish in time are refused.
/// </summary>
public sealed class RunDurationCap(HcSettings settings, Npgsql.NpgsqlDataSource db)
{
    const double OptimisticMfu = 0.5;

    public double MaxDays => settings.MaxRunDays;

    public async Task<ConfigError?> CheckAsync(JobPlan plan, DeviceKind device, CancellationToken ct)
    {
        var t = plan.Training;
        var queue = DeviceQueues.Of(device);
        var flopsPerToken = (double)HcService.Contract.Counting.ModelCounter.Flops(plan.Model, t.SeqLen).Training;
        var (flops, source) = await MeasuredAsync(plan.Model.Name, queue, device, ct) is { } measured
            ? (measured, $"the best training rate of recent {plan.Model.Name} runs on the {queue} queue, {measured / 1e12:0.###} TFLOP/s")
            : (PeakFlops(device) * OptimisticMfu, $"an optimistic bound: {OptimisticMfu:P0} of the {queue} device's peak {PeakFlops(device) / 1e12:0.###} TFLOP/s");
        var tokensPerSecond = flops / flopsPerToken;
        var days = t.Steps * (double)t.BatchTokens / tokensPerSecond / 86_400;
        if (days <= MaxDays) return null;
        if (plan.Model.IsVision)
            return new("training.imageBudget", t.ImageBudget,
                $"a budget this device trains within the cap of {MaxDays:0.##} days (HC_MAX_RUN_DAYS): {t.ImageBudget:N0} images ({t.TokenBudget:N0} tokens) at " +
                $"{tokensPerSecond:N0} tokens/s ({source}) take about {Human(days)}");
        return new("training.tokenBudget", t.TokenBudget,
            $"a budget this device trains within the cap of {MaxDays:0.##} days (HC_MAX_RUN_DAYS): {t.TokenBudget:N0} tokens at " +
            $"{tokensPerSecond:N0} tokens/s ({source}) take about {Human(days)}");
    }

    static string Human(double days) => days >= 730 ? $"{days / 365.25:N0} years" : $"{days:N1} days";

    double PeakFlops(DeviceKind device) => device == DeviceKind.Cuda
        ? settings.CudaPeakTflops * 1e12
        : settings.CpuPeakGflops * 1e9;

    /// <summary>The best FLOP/s of the latest succeeded runs of <paramref name="preset"/> on <paramref name="queue"/>, or
    /// null without any.</summary>
    async Task<double?> MeasuredAsync(string preset, string queue, DeviceKind device, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand($"""
            SELECT r."Spec"::text, (SELECT "Value" FROM hc.metric_points m WHERE m."RunId" = r."Id" AND m."Name" = '{MetricRegistry.TokensPerSecond.Name}'
                                    ORDER BY m."Step" DESC LIMIT 1)
            FROM hc.runs r WHERE r."Status" = '{RunStatus.Succeeded}' AND r."Queue" = $1 AND r."Preset" = $2 ORDER BY r."Id" DESC LIMIT 10
            """);
        cmd.Parameters.Add(new() { Value = queue });
        cmd.Parameters.Add(new() { Value = preset });
        double? best = null;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            if (reader.IsDBNull(1)) continue;
            var tps = reader.GetDouble(1);
            if (!(tps > 0 && tps < double.PositiveInfinity)) continue;
            try
            {
                var run = JobPlan.Resolve(JobSpec.Parse(reader.GetString(0)), device, submission: false);
                var achieved = tps * HcService.Contract.Counting.ModelCounter.Flops(run.Model, run.Training.SeqLen).Training;
                best = Math.Max(best ?? 0, achieved);
            }
            catch (Exception e) when (e is ConfigException or OverflowException) { /* a spec of an older version: not a measurement here */ }
        }
        return best;
    }
}
