using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Contract.Jobs;
using HcService.Core.Data;
using HcService.Core.Model;
using static TorchSharp.torch;

namespace HcService.Core.Training;

public sealed partial class TrainingRun
{
    /// <summary>An image classifier's run: the dataset's train split in seeded, augmented batches; its test split scored
    /// at every validation (loss per image, top-1, top-5); the loop, checkpoints and resume of every run.</summary>
    RunResult RunVision(DataCatalog catalog, CancellationToken cancel, CancellationToken abandon)
    {
        var (train, test) = OpenImages(catalog, plan);
        var t = plan.Training;
        ImageBatcher? batcher = null;
        return Loop(plan, position =>
            {
                batcher = new ImageBatcher(train, t.Seed, augment: true, t.Mixup, position);
                return (device => batcher.Next(t.MicroBatch, device), () => batcher.Position);
            },
            (model, step, tokens, device) => [Classify(model, batcher!, test, step, tokens, device)], null, cancel, abandon);
    }

    /// <summary>The train and test splits of the plan's image dataset, checked against the model: the image size,
    /// channels and classes must be the model's (the field named is data.train).</summary>
    public static (ImageSplit Train, ImageSplit Test) OpenImages(DataCatalog catalog, JobPlan plan)
    {
        var name = plan.TrainSet;
        var (folder, manifest) = ImageSplit.Fit(catalog, name, plan.Model.Vision!, plan.Model.Name);
        return (ImageSplit.Read(folder, manifest, train: true, name), ImageSplit.Read(folder, manifest, train: false, JobPlan.TestSplitName(name)));
    }

    /// <summary>Loss per image, top-1 and top-5 accuracy over every image of <paramref name="test"/>, standardised as the
    /// training batches are.</summary>
    ValidationMetrics Classify(LanguageModel model, ImageBatcher batcher, ImageSplit test, long step, long tokens, Device device)
    {
        model.eval();
        using var _ = no_grad();
        double loss = 0;
        long top1 = 0, top5 = 0;
        foreach (var (images, labels) in batcher.Sequential(test, options.ValidationBatch * 32, device))
        {
            using var scope = NewDisposeScope();
            var logits = model.Forward(images).Logits.to_type(ScalarType.Float32);
            loss += nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).item<float>();
            var k = Math.Min(5, (int)logits.shape[1]);
            var best = logits.topk(k, dim: 1).indexes;
            var hits = best.eq(labels.unsqueeze(1));
            top1 += hits.select(1, 0).sum().item<long>();
            top5 += hits.any(1).sum().item<long>();
            images.Dispose();
            labels.Dispose();
        }
        var mean = loss / test.Count;
        return new ValidationMetrics(step, tokens, test.Name, mean, Math.Exp(mean), (long)test.Count * plan.Training.SeqLen)
        {
            Accuracy = new ClassificationAccuracy((double)top1 / test.Count, (double)top5 / test.Count, test.Count),
        };
    }
}
