using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Contract.Jobs;
using HcService.Core.Data;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

/// <summary>Image-classification jobs: the spec's task, budget in images and the fields that do not fit a task; IDX files;
/// the seeded batches and augmentation that make a resumed vision run exact.</summary>
public class VisionJobTests
{
    static JobSpec Vision(string training, string preset = "vit-tiny", string extra = "") => JobSpec.Parse($$"""
        { "task": "image-classification", "model": { "preset": "{{preset}}" }, "architecture": "dense", "connection": { "type": "static-hc", "rate": 2 },
          "training": { {{training}} }{{extra}} }
        """);

    [Fact]
    public void AVisionJobIsBudgetedInImagesWithTheVitRecipe()
    {
        var plan = JobPlan.Resolve(Vision("\"imageBudget\": \"60K\""));
        var t = plan.Training;
        Assert.Equal((60_000L, 128L, 128, 1, 468L), (t.ImageBudget, t.BatchImages, t.MicroBatch, t.Accumulation, t.Steps));
        // Token counts are images times the sequence (49 patches and the class token): every cadence works in steps alike.
        Assert.Equal((50, 3_000_000L, 6_400L), (t.SeqLen, t.TokenBudget, t.BatchTokens));
        Assert.Equal((0.999, 0.0, 0.05, 2e-3, 94L), (t.Beta2, t.Mixup, t.WeightDecay, t.Lr, t.WarmupSteps));
        Assert.Equal((46L, 93L), (t.EvalEverySteps, t.CheckpointEverySteps));
        Assert.Equal("fashion-mnist", plan.TrainSet);
        Assert.Equal(["fashion-mnist.test"], plan.ValidationNames);
        Assert.False(plan.HoldsOutValidation);
        Assert.Equal(t, JobPlan.FromJson(plan.ToJson()).Training);

        // ViT-B/16: the paper's Table 12 (lr 0.003, batch 4096, weight decay 0.3, Mixup 0.2, 10k warmup, dropout 0.1).
        var b = JobPlan.Resolve(Vision("\"imageBudget\": \"384M\"", "vit-b-16"));
        Assert.Equal((3e-3, 4096L, 0.3, 0.2, 10_000L, 0.1), (b.Training.Lr, b.Training.BatchImages, b.Training.WeightDecay, b.Training.Mixup, b.Training.WarmupSteps, b.Model.Dropout));
        // An interval in images.
        Assert.Equal(10L, JobPlan.Resolve(Vision("\"imageBudget\": \"60K\", \"evalInterval\": 1280")).Training.EvalEverySteps);
        // A language model keeps AdamW's beta2 of OLMo.
        Assert.Equal(0.95, JobPlan.Resolve(JobSpec.Parse("""{ "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "1M" } }""")).Training.Beta2);
    }

    [Theory]
    [InlineData("\"tokenBudget\": \"1M\"", "", "training.imageBudget = null: must be a number of images")]
    [InlineData("\"imageBudget\": 1000, \"tokenBudget\": \"1M\"", "", "training.tokenBudget = 1M: must be absent for image-classification: use training.imageBudget")]
    [InlineData("\"imageBudget\": 100", "", "training.imageBudget = 100: must be >= one step of batchImages = 128")]
    [InlineData("\"imageBudget\": 1000, \"batchImages\": 100, \"microBatch\": 64", "", "training.batchImages = 100: must be a positive multiple of microBatch = 64")]
    [InlineData("\"imageBudget\": 1000, \"evalTokens\": \"8K\"", "", "training.evalTokens = 8K: must be absent for image-classification")]
    [InlineData("\"imageBudget\": 1000, \"mixup\": -1", "", "training.mixup = -1: must be a number in [0, 10]")]
    [InlineData("\"imageBudget\": 1000", ", \"data\": { \"validation\": [\"valid-austen-bytes\"] }", "data.validation = 'valid-austen-bytes': must be absent for image-classification")]
    [InlineData("\"imageBudget\": 1000", ", \"evaluation\": { \"tasks\": [\"arc_easy\"] }", "evaluation = '(given)': must be absent for image-classification")]
    public void FieldsThatDoNotFitAVisionJobAreNamed(string training, string extra, string error) =>
        Assert.Contains(error, Assert.Throws<ConfigException>(() => JobPlan.Resolve(Vision(training, extra: extra))).Message);

    [Fact]
    public void TheTaskAndThePresetMustAgree()
    {
        var lmPresetForVision = Assert.Throws<ConfigException>(() => JobPlan.Resolve(Vision("\"imageBudget\": 1000", "tiny")));
        Assert.Contains("model.preset = 'tiny': must be a vision preset for task image-classification: vit-tiny, vit-s-16, vit-b-16, vit-l-16", lmPresetForVision.Message);
        var vitForLm = Assert.Throws<ConfigException>(() => JobPlan.Resolve(JobSpec.Parse(
            """{ "model": { "preset": "vit-b-16" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "1M" } }""")));
        Assert.Contains("the vit-* presets need \"task\": \"image-classification\"", vitForLm.Message);
        var unknown = Assert.Throws<ConfigException>(() => JobPlan.Resolve(JobSpec.Parse(
            """{ "task": "segmentation", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "1M" } }""")));
        Assert.Contains("task = 'segmentation': must be language-modeling or image-classification", unknown.Message);
        var lmWithImages = Assert.Throws<ConfigException>(() => JobPlan.Resolve(JobSpec.Parse(
            """{ "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "1M", "mixup": 0.2 } }""")));
        Assert.Contains("training.mixup = 0.2: must be absent for language-modeling", lmWithImages.Message);
        var moe = Assert.Throws<ConfigException>(() => JobPlan.Resolve(JobSpec.Parse(
            """{ "task": "image-classification", "model": { "preset": "vit-tiny" }, "architecture": "moe", "connection": { "type": "residual" }, "training": { "imageBudget": 1000 } }""")));
        Assert.Contains("architecture = 'moe': must be dense for a vision model", moe.Message);
    }

    [Fact]
    public void IdxFilesRoundTripAndBadOnesAreNamed()
    {
        var dir = Directory.CreateTempSubdirectory("idx").FullName;
        var pixels = Enumerable.Range(0, 3 * 4 * 4).Select(i => (byte)(i * 5)).ToArray();
        Idx.Write(Path.Combine(dir, "a.gz"), [3, 4, 4], pixels);
        var (dims, data) = Idx.Read(Path.Combine(dir, "a.gz"));
        Assert.Equal([3, 4, 4], dims);
        Assert.Equal(pixels, data);
        File.WriteAllBytes(Path.Combine(dir, "bad"), [0, 0, 0x0D, 1, 0, 0, 0, 1, 0]);   // 0x0D: float, not unsigned byte
        Assert.Contains("not an unsigned-byte IDX file", Assert.Throws<InvalidDataException>(() => Idx.Read(Path.Combine(dir, "bad"))).Message);
        Idx.Write(Path.Combine(dir, "short"), [10], [1, 2, 3]);
        Assert.Contains("shorter than its 10 header says", Assert.Throws<InvalidDataException>(() => Idx.Read(Path.Combine(dir, "short"))).Message);
        // Labels past the class list are refused, naming the file.
        Idx.Write(Path.Combine(dir, "labels"), [3], [0, 1, 7]);
        var manifest = new ImageManifest { Classes = ["a", "b"], Train = new("a.gz", "labels"), Test = new("a.gz", "labels") };
        Assert.Contains("labels: label 7 for 2 classes", Assert.Throws<InvalidDataException>(() => ImageSplit.Read(dir, manifest, train: true, "x")).Message);
    }

    /// <summary>Mixup's weight is a Beta(alpha, alpha) draw in (0, 1) for any alpha the spec takes: at alpha = 0.001 both
    /// Gamma draws underflow to 0 in linear space (0 / 0), which the log-space draw never does; its mean is 1/2.</summary>
    [Theory]
    [InlineData(0.001)]
    [InlineData(0.2)]
    [InlineData(4.0)]
    public void MixupWeightsAreBetaDrawsInTheUnitInterval(double alpha)
    {
        ulong state = 42;
        var draws = Enumerable.Range(0, 4000).Select(_ => ImageBatcher.Beta(alpha, ref state)).ToList();
        Assert.All(draws, d => Assert.True(d is >= 0 and <= 1, $"{d}"));
        Assert.InRange(draws.Average(), 0.45, 0.55);
        // Beta(alpha, alpha) has variance 1 / (4 (2 alpha + 1)): near 1/4 (all at 0 or 1) for a small alpha, 1/36 at 4.
        var variance = draws.Select(d => (d - 0.5) * (d - 0.5)).Average();
        Assert.InRange(variance, 0.8 / (4 * (2 * alpha + 1)), 1.2 / (4 * (2 * alpha + 1)));
    }

    static ImageSplit Synthetic(int count = 50, int size = 8) =>
        new("synthetic", [.. Enumerable.Range(0, count * size * size).Select(i => (byte)(i * 37 % 251))], [.. Enumerable.Range(0, count).Select(i => i % 3)], 1, size, 3);

    /// <summary>A batcher started at a checkpoint's position draws exactly what the uninterrupted one draws next: the same
    /// images, crops, flips and Mixup weights (every random number is a function of the seed and the position).</summary>
    [Fact]
    public void BatchesFromASavedPositionAreTheSameBatches()
    {
        var data = Synthetic();
        var straight = new ImageBatcher(data, seed: 9, augment: true, mixup: 0.4);
        for (var i = 0; i < 3; i++) straight.Next(16, CPU);   // into the second epoch (48 of 50, then 2 + 14)
        var position = straight.Position;
        var resumed = new ImageBatcher(data, seed: 9, augment: true, mixup: 0.4, position);
        for (var i = 0; i < 4; i++)
        {
            var (x, y) = straight.Next(16, CPU);
            var (rx, ry) = resumed.Next(16, CPU);
            Assert.Equal(x.data<float>().ToArray(), rx.data<float>().ToArray());
            Assert.Equal(y.data<float>().ToArray(), ry.data<float>().ToArray());
            // Mixup targets are distributions over the 3 classes, and not all one-hot (pairs of different classes mix).
            Assert.True(TestModels.MaxAbsDiff(y.sum(1L), ones(16)) < 1e-5);
            Assert.True(y.max(1L).values.min().item<float>() < 0.999f);
        }
        // Another seed draws other batches.
        var other = new ImageBatcher(data, seed: 10, augment: true, mixup: 0.4, position);
        Assert.NotEqual(straight.Next(16, CPU).Images.data<float>().ToArray(), other.Next(16, CPU).Images.data<float>().ToArray());
    }

    /// <summary>Without augmentation a batch is the images standardised by the training split's mean and deviation; with
    /// it, each is the same image shifted by at most size / 8 pixels and perhaps mirrored.</summary>
    [Fact]
    public void AugmentationShiftsAndMirrorsTheStandardisedImage()
    {
        var data = Synthetic(count: 1, size: 16);
        var plain = new ImageBatcher(data, seed: 1, augment: false, mixup: 0);
        var (mean, std) = plain.Normalisation;
        var x = plain.Next(1, CPU).Images.reshape(16, 16);
        var expected = tensor(data.Pixels.Select(p => (p / 255f - mean) / std).ToArray()).reshape(16, 16);
        Assert.True(TestModels.MaxAbsDiff(x, expected) < 1e-6);
        Assert.True(Math.Abs(x.mean().item<float>()) < 1e-5 && Math.Abs(x.std().item<float>() - 1) < 0.01);

        var augmented = new ImageBatcher(data, seed: 1, augment: true, mixup: 0);
        for (var i = 0; i < 8; i++)
        {
            var a = augmented.Next(1, CPU).Images.reshape(16, 16);
            var found = false;
            foreach (var flip in new[] { false, true })
                for (var dy = -2; dy <= 2 && !found; dy++)
                    for (var dx = -2; dx <= 2 && !found; dx++)
                    {
                        var source = flip ? expected.flip(1) : expected;
                        var inside = a.narrow(0, Math.Max(0, -dy), 16 - Math.Abs(dy)).narrow(1, Math.Max(0, -dx), 16 - Math.Abs(dx));
                        var from = source.narrow(0, Math.Max(0, dy), 16 - Math.Abs(dy)).narrow(1, Math.Max(0, dx), 16 - Math.Abs(dx));
                        found = TestModels.MaxAbsDiff(inside, from) < 1e-6;
                    }
            Assert.True(found, $"batch {i} is no shift of at most 2 pixels of the image, mirrored or not");
        }
    }
}
