using System.Text;
using HcService.Contract.Data;
using HcService.Core.Data;

namespace HcService.Core.Tests;

public class DataTests
{
    static readonly string Fixture = TestModels.FixturePath("moby-dick-excerpt.txt");

    [Theory]
    [InlineData("gpt2")]
    [InlineData("bytes")]
    public void PreparedTokensReadBackToTheOriginalText(string tokenizerName)
    {
        var outDir = RepoPaths.TempDir("prep");
        var tokenizer = TextTokenizers.Create(tokenizerName);
        var manifest = DatasetPreparer.Prepare([Fixture], outDir, tokenizer);

        using var data = new TokenDataset(outDir);
        Assert.Equal(manifest.TokenCount, data.Length);
        var ids = new long[data.Length];
        data.Read(0, ids);
        Assert.Equal(tokenizer.EndOfText, ids[^1]);                       // end-of-text after the document
        Assert.All(ids, id => Assert.InRange(id, 0, tokenizer.VocabSize - 1));
        var text = File.ReadAllText(Fixture);
        Assert.Equal(text, tokenizer.Decode(ids[..^1].Select(i => (int)i)));
        Assert.Equal("uint16", manifest.DType);
        var source = Assert.Single(manifest.Sources);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Fixture))), source.Sha256);
        if (tokenizerName == "bytes") Assert.Equal(Encoding.UTF8.GetByteCount(text) + 1, data.Length);
        else Assert.InRange(data.Length, text.Length / 6, text.Length / 3);   // GPT-2 BPE: ~4 characters per token on English prose
    }

    [Fact]
    public void NpyHeaderIsWhatNumpyWrites()
    {
        var outDir = RepoPaths.TempDir("npy");
        DatasetPreparer.Prepare([Fixture], outDir, new ByteTextTokenizer());
        var bytes = File.ReadAllBytes(Path.Combine(outDir, "tokens.npy"));
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        var headerLen = BitConverter.ToUInt16(bytes, 8);
        Assert.Equal(0, (10 + headerLen) % 64);                              // numpy aligns the data to 64 bytes
        var header = Encoding.ASCII.GetString(bytes, 10, headerLen);
        Assert.StartsWith("{'descr': '<u2', 'fortran_order': False, 'shape': (16385,), }", header);
        Assert.EndsWith("\n", header);
        Assert.Equal(10 + headerLen + 2 * 16385, bytes.Length);
    }

    [Fact]
    public void ReaderReadsRawUint32ShardsAndNpyFoldersWithoutManifest()
    {
        var dir = RepoPaths.TempDir("raw");
        var values = Enumerable.Range(0, 1000).Select(i => (uint)(i * 70_001 % 100_000)).ToArray();
        File.WriteAllBytes(Path.Combine(dir, "part-0.bin"), values.SelectMany(BitConverter.GetBytes).ToArray());
        File.WriteAllText(Path.Combine(dir, DatasetManifest.FileName), new DatasetManifest
        {
            Tokenizer = "unknown", VocabSize = 100_000, DType = "uint32", TokenCount = 1000, Files = [new("part-0.bin", 1000)],
        }.ToJson());
        using var data = new TokenDataset(dir);
        var read = new long[10];
        data.Read(990, read);
        Assert.Equal(values[990..].Select(v => (long)v), read);

        // OLMo-style: a folder of .npy shards, no manifest: read in name order as one stream.
        var shards = RepoPaths.TempDir("shards");
        DatasetPreparer.Prepare([Fixture], Path.Combine(shards, "a"), new ByteTextTokenizer());
        File.Copy(Path.Combine(shards, "a", "tokens.npy"), Path.Combine(shards, "part-000.npy"));
        File.Copy(Path.Combine(shards, "a", "tokens.npy"), Path.Combine(shards, "part-001.npy"));
        Directory.Delete(Path.Combine(shards, "a"), true);
        using var olmo = new TokenDataset(shards);
        Assert.Equal(2 * 16385, olmo.Length);
        var across = new long[4];
        olmo.Read(16383, across);                                               // spans the shard boundary
        Assert.Equal(0, across[1]);                                             // end-of-text closing shard 0
        Assert.Equal((long)File.ReadAllBytes(Fixture)[0], across[2]);           // shard 1 starts over
    }

    [Fact]
    public void WindowsAreInRangeReproducibleFromTheSeedAndResumable()
    {
        var outDir = RepoPaths.TempDir("win");
        DatasetPreparer.Prepare([Fixture], outDir, new ByteTextTokenizer());
        using var data = new TokenDataset(outDir);
        const int T = 64;

        var a = new WindowSampler(data, T, seed: 5);
        var b = new WindowSampler(data, T, seed: 5);
        var c = new WindowSampler(data, T, seed: 6);
        Assert.Equal((data.Length - 1) / T, a.Windows);
        var first = Enumerable.Range(0, 10).Select(_ => a.Next(4)).ToList();
        Assert.Equal(first.SelectMany(x => x), Enumerable.Range(0, 10).SelectMany(_ => b.Next(4)));   // same seed, same order
        Assert.NotEqual(first[0], c.Next(4));                                                        // another seed, another order

        // Each window is a contiguous slice of the stream starting at a multiple of T.
        var all = new long[data.Length];
        data.Read(0, all);
        foreach (var batch in first)
            for (var w = 0; w < 4; w++)
            {
                var window = batch.AsSpan(w * (T + 1), T + 1).ToArray();
                var starts = Enumerable.Range(0, (int)a.Windows).Where(s => all.AsSpan(s * T, T + 1).SequenceEqual(window)).ToList();
                Assert.NotEmpty(starts);
            }

        // One epoch visits every window exactly once; then a new permutation starts.
        var sampler = new WindowSampler(data, T, seed: 9);
        var seen = new HashSet<string>();
        for (var i = 0; i < sampler.Windows; i++) seen.Add(string.Join(',', sampler.Next(1)));
        Assert.Equal(sampler.Windows, seen.Count);
        Assert.Equal(new SamplerPosition(0, sampler.Windows), sampler.Position);
        sampler.Next(1);
        Assert.Equal(new SamplerPosition(1, 1), sampler.Position);

        // A reader resumed from a saved position continues exactly where the first stopped.
        var original = new WindowSampler(data, T, seed: 3);
        for (var i = 0; i < 7; i++) original.Next(3);
        var resumed = new WindowSampler(data, T, seed: 3, original.Position);
        for (var i = 0; i < 50; i++) Assert.Equal(original.Next(3), resumed.Next(3));
    }

    [Fact]
    public void DatasetNamesResolveOnlyInsideTheDataRoot()
    {
        var catalog = new DataCatalog(RepoPaths.DataRoot);
        Assert.EndsWith("corpus-bytes", catalog.Resolve("corpus-bytes", "data.train"));
        foreach (var bad in new[] { "../corpus-bytes", "/etc", "corpus-bytes/../../x", "..", "missing-set" })
        {
            var ex = Assert.Throws<HcService.Contract.Config.ConfigException>(() => catalog.Resolve(bad, "data.train"));
            Assert.Equal("data.train", ex.Errors[0].Field);
        }
        Assert.Contains("valid-wikitext-gpt2", catalog.List());
    }

    [Theory]
    // length, seqLen, evalTokens -> held-out tokens (w x T + 1); 0: too short to hold out
    [InlineData(100_000, 64, 1000, 15 * 64 + 1)]      // 1000 / 64 = 15 whole windows, as validation reads
    [InlineData(100_000, 64, 1024, 16 * 64 + 1)]      // exactly 16
    [InlineData(100_000, 64, 64_000, 156 * 64 + 1)]   // capped: (10,000 - 1) / 64 = 156 windows, under 10%
    [InlineData(650, 64, 8192, 65)]                   // the shortest that holds out: 10 x (T + 1), one window
    [InlineData(649, 64, 8192, 0)]
    [InlineData(100_000, 64, 10, 65)]                 // under one window: one
    [InlineData(20_000, 512, 8192, 3 * 512 + 1)]      // (2,000 - 1) / 512 = 3
    public void AHeldOutTailIsWholeWindowsCappedAtATenth(long length, int seqLen, long evalTokens, long expected)
    {
        var split = HeldOut.Split(length, seqLen, evalTokens);
        if (expected == 0)
        {
            Assert.Null(split);
            Assert.True(length < HeldOut.MinimumLength(seqLen));
            return;
        }
        Assert.Equal((length - expected, expected), split);
        Assert.True(expected * HeldOut.MaxShare <= length, "at most a tenth");
        Assert.True(length >= HeldOut.MinimumLength(seqLen));
    }

    /// <summary>A spec that names only its training data validates on the data's own tail: every token a training window
    /// reads (inputs and targets, over whole epochs) lies before the tail, every validation window lies inside it, and the
    /// split is the same each time the data is opened.</summary>
    [Fact]
    public void TrainingWindowsNeverReadTheHeldOutTail()
    {
        // Each token is its own position, so a window's tokens say where it was read from.
        const long N = 30_011;
        var dir = Path.Combine(RepoPaths.TempDir("heldout"), "positions");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "part-0.bin"), Enumerable.Range(0, (int)N).SelectMany(i => BitConverter.GetBytes((uint)i)).ToArray());
        File.WriteAllText(Path.Combine(dir, DatasetManifest.FileName), new DatasetManifest
        {
            Tokenizer = "unknown", VocabSize = 100_000, DType = "uint32", TokenCount = N, Files = [new("part-0.bin", N)],
        }.ToJson());
        var plan = HcService.Contract.Jobs.JobPlan.Resolve(HcService.Contract.Jobs.JobSpec.Parse("""
            { "model": { "preset": "tiny", "overrides": { "vocab": 100000 } }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 100000, "evalTokens": 1000 }, "data": { "train": "positions" } }
            """));
        Assert.True(plan.HoldsOutValidation);
        Assert.Empty(plan.ValidationSets);
        Assert.Equal(["positions.heldout"], plan.ValidationNames);
        var T = plan.Training.SeqLen;

        using var data = new TokenDataset(dir);
        var (train, tail) = HcService.Core.Training.TrainingRun.Split(data, plan);
        var (trainTokens, tailTokens) = HeldOut.Split(N, T, 1000)!.Value;
        Assert.Equal(trainTokens, train.Length);
        Assert.Equal("positions", train.Name);
        Assert.Equal("positions.heldout", tail!.Name);

        var sampler = new WindowSampler(train, T, seed: 1);
        long lastRead = -1;
        for (var i = 0; i < 2 * sampler.Windows; i++) lastRead = Math.Max(lastRead, sampler.Next(1).Max());
        Assert.Equal(sampler.Windows * T, lastRead);        // the last window's target token...
        Assert.True(lastRead < trainTokens, $"training read token {lastRead}; the tail starts at {trainTokens}");
        var validation = WindowSampler.Sequential(tail, T, plan.Training.EvalTokens, batch: 4).SelectMany(w => w).ToList();
        Assert.Equal(trainTokens, validation.Min());          // ...and the tail starts right after the training stream
        Assert.Equal(N - 1, validation.Max());               // and ends at the dataset's end
        Assert.Equal(tailTokens, validation.Distinct().Count());

        using var again = new TokenDataset(dir);
        var (_, tail2) = HcService.Core.Training.TrainingRun.Split(again, plan);
        Assert.Equal(validation, WindowSampler.Sequential(tail2!, T, plan.Training.EvalTokens, batch: 4).SelectMany(w => w));

        // Named validation sets, or a plan stored before held-out tails existed: no tail, the whole stream trains.
        var named = HcService.Contract.Jobs.JobPlan.Resolve(HcService.Contract.Jobs.JobSpec.Parse("""
            { "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 100000 }, "data": { "train": "positions", "validation": ["valid-austen-bytes"] } }
            """));
        Assert.False(named.HoldsOutValidation);
        Assert.Same(data, HcService.Core.Training.TrainingRun.Split(data, named).Train);
        var stored = System.Text.Json.Nodes.JsonNode.Parse(plan.ToJson())!.AsObject();
        Assert.True(stored["holdsOutValidation"]!.GetValue<bool>());
        Assert.True(HcService.Contract.Jobs.JobPlan.FromJson(plan.ToJson()).HoldsOutValidation);
        stored.Remove("holdsOutValidation");
        Assert.False(HcService.Contract.Jobs.JobPlan.FromJson(stored.ToJsonString()).HoldsOutValidation);
    }

    [Theory]
    [InlineData("corpus-bytes", true)]
    [InlineData("a.b_c-1", true)]
    [InlineData("corpus\n", false)]   // '$' would match before a final newline
    [InlineData("../x", false)]
    [InlineData(".upload-1", false)]   // staging folders of uploads are never names
    public void DatasetNamesAreWholeNamesNeverPaths(string name, bool valid) => Assert.Equal(valid, DataCatalog.IsName(name));
}
