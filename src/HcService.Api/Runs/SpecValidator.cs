using HcService.Core.Config;
using HcService.Core.Data;
using HcService.Core.Jobs;

namespace HcService.Api.Runs;

/// <summary>Turns a submitted spec into a plan, or every error: the spec's own rules (JobPlan) and the datasets,
/// which must exist under the data root and fit the model's vocabulary.</summary>
public sealed class SpecValidator(HcService.Store.Jobs.HcPaths paths)
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
        return errors.Count > 0 ? (null, errors) : (plan, []);
    }
}
