using HcService.Contract.Config;

namespace HcService.Contract.Data;

/// <summary>Whether an opened token dataset fits a job: its tokenizer's vocabulary, its length, its token ids, and for a
/// training dataset that holds out its validation tail, room for one. The one check that submission (the API) and
/// training (the child, `hc train`) both make.</summary>
public static class DatasetFit
{
    /// <summary>The first way <paramref name="dataset"/> (named <paramref name="name"/>, given as <paramref name="field"/>)
    /// does not fit <paramref name="plan"/>'s model and sequences; null when it fits.</summary>
    /// <param name="sampleIds">Also read a sample of its token ids (submission: a wrong manifest is caught before any run).</param>
    public static ConfigError? Check(TokenDataset dataset, string name, string field, HcService.Contract.Jobs.JobPlan plan, bool sampleIds)
    {
        var (model, seqLen) = (plan.Model, plan.Training.SeqLen);
        var manifest = dataset.Manifest;
        if (manifest.VocabSize > model.Vocab)
            return new(field, name,
                $"a dataset whose tokenizer fits the model's vocabulary {model.Vocab}; '{name}' is tokenised with {manifest.Tokenizer} " +
                $"(vocabulary {manifest.VocabSize}): set model.overrides.vocab or pick a {(model.Vocab < 50257 ? "bytes" : "gpt2")} dataset");
        if (dataset.Length < seqLen + 1)
            return new(field, name, $"a dataset of at least one sequence ({seqLen + 1} tokens); '{name}' has {dataset.Length}");
        if (sampleIds && dataset.SampleMax() is var max && max >= model.Vocab)
            return new(field, name,
                $"a dataset whose token ids fit the model's vocabulary {model.Vocab}: '{name}' holds token id {max} (its manifest says {manifest.Tokenizer}, vocabulary {manifest.VocabSize})");
        if (field == "data.train" && plan.HoldsOutValidation && HeldOut.Split(dataset.Length, seqLen, plan.Training.EvalTokens) is null)
            return TooShortToHoldOut(dataset, name, seqLen);
        return null;
    }

    /// <summary>The error for a training dataset too short to hold out a validation tail (<see cref="HeldOut"/>).</summary>
    public static ConfigError TooShortToHoldOut(TokenDataset dataset, string name, int seqLen) =>
        new("data.train", name, $"a dataset of at least {HeldOut.MinimumLength(seqLen)} tokens to hold out a validation tail of at most " +
            $"1/{HeldOut.MaxShare} ('{name}' has {dataset.Length}), or name validation datasets in data.validation");
}
