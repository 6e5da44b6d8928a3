using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HcService.Contract.Data;

namespace HcService.Service.Tests;

/// <summary>An image-classification job through the service: the submission checks the image dataset against the model,
/// the worker trains the ViT, and top-1 / top-5 accuracy are stored as metrics.</summary>
[Collection("service")]
public class VisionServiceTests(ServiceFixture svc)
{
    /// <summary>A small image dataset of <paramref name="channels"/> x 28 x 28 images in 10 classes whose class is their
    /// brightness (noise around 20 + 22 x class), which a ViT at init already sees (its class token averages the patches),
    /// so that it learns it in a few steps.</summary>
    static void WriteImages(string root, string name, int channels, int train = 512, int test = 200)
    {
        var folder = Path.Combine(root, name);
        Directory.CreateDirectory(folder);
        foreach (var (split, count) in new[] { ("train", train), ("test", test) })
        {
            var pixels = new byte[count * channels * 28 * 28];
            var labels = new byte[count];
            var random = new Random(count);
            for (var i = 0; i < count; i++)
            {
                labels[i] = (byte)(i % 10);
                for (var p = 0; p < channels * 28 * 28; p++) pixels[i * channels * 784 + p] = (byte)(20 + 22 * labels[i] + random.Next(-15, 16));
            }
            Idx.Write(Path.Combine(folder, $"{split}-images.gz"), channels == 1 ? [count, 28, 28] : [count, channels, 28, 28], pixels);
            Idx.Write(Path.Combine(folder, $"{split}-labels.gz"), [count], labels);
        }
        File.WriteAllText(Path.Combine(folder, DatasetManifest.FileName), new ImageManifest
        {
            Classes = [.. Enumerable.Range(0, 10).Select(i => $"class-{i}")],
            Train = new("train-images.gz", "train-labels.gz"),
            Test = new("test-images.gz", "test-labels.gz"),
        }.ToJson());
    }

    [Fact]
    public async Task AViTRunTrainsThroughTheServiceAndStoresItsAccuracy()
    {
        WriteImages(svc.DataRoot, "squares", channels: 1);
        WriteImages(svc.DataRoot, "squares-rgb", channels: 3, train: 20, test: 10);

        var listed = (await svc.Http.GetFromJsonAsync<JsonArray>("api/datasets"))!.Single(d => d!["name"]!.GetValue<string>() == "squares")!;
        Assert.Equal("images", listed["tokenizer"]!.GetValue<string>());
        Assert.Equal(10, listed["classes"]!.AsArray().Count);

        var id = await svc.SubmitOk("""
            { "task": "image-classification", "name": "vit-squares", "model": { "preset": "vit-tiny" }, "architecture": "dense",
              "connection": { "type": "dynamic-hc", "rate": 2 }, "data": { "train": "squares" },
              "training": { "imageBudget": 2048, "batchImages": 64, "microBatch": 64, "warmupSteps": 2, "lr": 0.003 } }
            """);
        var (status, _) = await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(4));
        Assert.True(status == "succeeded", svc.WorkerLog);
        var top1 = await svc.Series(id, "val/squares.test/top1");
        var top5 = await svc.Series(id, "val/squares.test/top5");
        var loss = await svc.Series(id, "val/squares.test/loss");
        Assert.Equal([0L, 3L, 6L, 9L, 12L, 15L, 18L, 21L, 24L, 27L, 30L, 32L], top1.Select(p => p.Step));
        Assert.Equal(top1.Select(p => p.Step), loss.Select(p => p.Step));
        Assert.Equal(0.1, top1[0].Value);   // the zero head ties every class at step 0
        Assert.True(top1[^1].Value > 0.5, $"top-1 {top1[0].Value} -> {top1[^1].Value}");
        Assert.True(top5[^1].Value >= top1[^1].Value);
        Assert.True(loss[^1].Value < loss[0].Value - 0.5, $"loss {loss[0].Value} -> {loss[^1].Value}");

        // An image dataset of another shape, a language preset for an image task, a vision preset without the task: each
        // refused at submission, naming its field.
        foreach (var (spec, expected) in new[]
        {
            ("""{ "task": "image-classification", "model": { "preset": "vit-tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "imageBudget": 1000 }, "data": { "train": "squares-rgb" } }""",
                "data.train = 'squares-rgb': must be images of the model's shape: 1 channel(s), 28 x 28 px, 10 classes"),
            ("""{ "task": "image-classification", "model": { "preset": "vit-tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "imageBudget": 1000 }, "data": { "train": "valid-austen-bytes" } }""",
                "data.train = 'valid-austen-bytes': must be an image dataset"),
            ("""{ "model": { "preset": "vit-tiny" }, "architecture": "dense", "connection": { "type": "residual" }, "training": { "tokenBudget": "1M" } }""",
                "model.preset = 'vit-tiny': must be a language-model preset"),
        })
        {
            var (code, problem) = await svc.Submit(spec);
            Assert.Equal(HttpStatusCode.BadRequest, code);
            Assert.Contains(expected, problem!.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        }
    }
}
