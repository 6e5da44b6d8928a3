using HcService.Core.Config;
using HcService.Core.Data;
using HcService.Core.Jobs;

namespace HcService.Api.Runs;

/// <summary>Turns a submitted spec into a plan, or every error: the spec's own rules (JobPlan), the datasets, which
/// must exist under the data root and fit the model's vocabulary, and memory: a run whose estimated training memory
/// does not fit its device is rejected with the estimate, rather than dying of OOM on a worker hours later.</summary>
public sealed class SpecValidator(HcService.Store.Jobs.HcPaths paths, DeviceMemory memory)
{
    public (JobPlan? Plan, IReadOnlyList<ConfigError> Errors) Validate(JobSpec spec, DeviceKind device)
    {
        JobPlan plan;
        try { plan = JobPlan.Resolve(spec, device); }
        catch (ConfigException e) { return (null, e.Errors); }

        var errors = new List<ConfigError>();
        var catalog = new DataCatalog(paths.DataRoot);
        var (train, valid) = DataCatalog.ShippedDefaults(plan.Model.Vocab);
        var names = new List<(string Field, string Name)> { ("data.train", plan.TrainData ?? train) };
        names.AddRange((plan.ValidationData ?? valid).Select((n, i) => ($"data.validation[{i}]", n)));
        foreach (var (field, name) in names)
        {
            try
            {
                var folder = catalog.Resolve(name, field);
                var manifestPath = Path.Combine(folder, DatasetManifest.FileName);
                if (File.Exists(manifestPath))
                {
                    var manifest = DatasetManifest.Parse(File.ReadAllText(manifestPath), manifestPath);
                    if (manifest.VocabSize > plan.Model.Vocab)
                        errors.Add(new(field, name, $"a dataset whose tokenizer fits the model's vocabulary {plan.Model.Vocab} ('{name}' is {manifest.Tokenizer}, vocabulary {manifest.VocabSize})"));
                }
            }
            catch (ConfigException e) { errors.AddRange(e.Errors); }
        }
        if (memory.Check(plan, device) is { } tooBig) errors.Add(tooBig);
        return errors.Count > 0 ? (null, errors) : (plan, []);
    }
}

/// <summary>
/// Device memory per queue, for the fit check: Hc:Devices:cuda:MemoryGiB (default 80, an 80 GB A100/H100; set 141 for
/// an H200) and Hc:Devices:cpu:MemoryGiB (default: this host's memory). A run must fit in 90% of it (the rest is the
/// CUDA context, the allocator's fragmentation and the evaluation batch). Training here is single-device, so a model
/// whose weights and AdamW state alone exceed one device (OLMo-7B on 80 GB) is rejected with that reason.
/// </summary>
public sealed class DeviceMemory(IConfiguration config)
{
    const double Usable = 0.9;

    public long Bytes(DeviceKind device) => device == DeviceKind.Cuda
        ? (long)(config.GetValue("Hc:Devices:cuda:MemoryGiB", 80.0) * (1L << 30))
        : config.GetValue<double?>("Hc:Devices:cpu:MemoryGiB") is { } gib ? (long)(gib * (1L << 30)) : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    public ConfigError? Check(JobPlan plan, DeviceKind device)
    {
        var t = plan.Training;
        var estimate = HcService.Core.Counting.ModelCounter.Memory(plan.Model with { MaxSeqLen = t.SeqLen }, t.MicroBatch, t.Precision == Precision.Bf16);
        var capacity = Bytes(device);
        if (estimate.Total <= Usable * capacity) return null;
        static string GiB(long b) => (b / (double)(1L << 30)).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " GiB";
        return new("training.microBatch", t.MicroBatch,
            $"a micro-batch whose training memory fits the {(device == DeviceKind.Cuda ? "cuda" : "cpu")} device: the estimate is {GiB(estimate.Total)} " +
            $"(weights + AdamW state {GiB(estimate.WeightsAndOptimizer)}, activations {GiB(estimate.Activations)} at {t.MicroBatch} x {t.SeqLen} tokens) " +
            $"and {Usable:P0} of the device's {GiB(capacity)} is usable; lower training.microBatch (gradient accumulation keeps the batch) or pick a smaller model");
    }
}
