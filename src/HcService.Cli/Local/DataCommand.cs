using System.CommandLine;
using System.Globalization;
using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Core.Data;

namespace HcService.Cli.Local;

/// <summary>`hc data prepare` (text to token files) and `hc data list` (datasets under the data root).</summary>
static class DataCommand
{
    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs") { Description = "Text files, or folders of *.txt files (each file is one document)", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "Dataset folder to write (tokens.npy + manifest.json)", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "gpt2 (GPT-2 BPE, vocabulary 50257) or bytes (UTF-8 bytes, vocabulary 256); default: the one --preset's model reads" };
        tokenizer.AcceptOnlyFromAmong([.. TextTokenizers.Names]);
        var preset = new Option<string?>("--preset") { Description = $"The model preset the dataset is for ({string.Join(", ", Presets.All.Keys)}): picks the tokenizer whose vocabulary it reads" };
        preset.AcceptOnlyFromAmong([.. Presets.All.Keys]);
        var prepare = new Command("prepare", "Tokenise plain text into an OLMo-compatible token file (uint16 .npy) with a manifest");
        prepare.Add(inputs);
        prepare.Add(output);
        prepare.Add(tokenizer);
        prepare.Add(preset);
        prepare.SetAction(r =>
        {
            var tok = TextTokenizers.Create(r.GetValue(tokenizer) ?? TokenizerFor(r.GetValue(preset)));
            using var bar = new ProgressBar("tokenising");
            var manifest = DatasetPreparer.Prepare(r.GetValue(inputs)!, r.GetValue(output)!, tok, bar);
            bar.Done();
            Console.WriteLine($"{manifest.TokenCount.ToString("N0", CultureInfo.InvariantCulture)} tokens ({manifest.Tokenizer}, {manifest.DType}) " +
                              $"from {manifest.Sources.Count} files -> {Path.GetFullPath(r.GetValue(output)!)}");
            return 0;
        });

        var root = DataRootOption.Create();
        var list = new Command("list", "Datasets under the data root");
        list.Add(root);
        list.SetAction(r =>
        {
            var catalog = new DataCatalog(DataRootOption.Resolve(r.GetValue(root)));
            Console.WriteLine($"data root: {catalog.Root}");
            foreach (var name in catalog.List())
            {
                using var ds = new TokenDataset(Path.Combine(catalog.Root, name));
                Console.WriteLine($"  {name,-28} {ds.Length,12:N0} tokens  {ds.Manifest.Tokenizer} (vocabulary {ds.Manifest.VocabSize})");
            }
            return 0;
        });

        var data = new Command("data", "Token datasets");
        data.Add(prepare);
        data.Add(list);
        return data;
    }

    /// <summary>The tokenizer a preset's model reads (its vocabulary: 256 bytes, else GPT-2's 50257); without a preset, an
    /// error that says which to pick for which presets, instead of a default that fails at the first training.</summary>
    internal static string TokenizerFor(string? preset)
    {
        static string Of(ModelConfig m) => m.Vocab <= 256 ? "bytes" : "gpt2";
        if (preset is not null) return Of(Presets.All[preset]);
        var byTokenizer = Presets.All.GroupBy(p => Of(p.Value)).Select(g => $"{g.Key} for {string.Join(", ", g.Select(p => p.Key))}");
        throw new HcService.Contract.Config.ConfigException([new("--tokenizer", "(not given)",
            $"a tokenizer that matches the model that will train on it: {string.Join("; ", byTokenizer)} (or name the model with --preset)")]);
    }
}

/// <summary>A one-line progress bar on a terminal; silent when stderr is redirected (logs, CI).</summary>
sealed class ProgressBar(string label) : IProgress<(long Done, long Total)>, IDisposable
{
    readonly System.Diagnostics.Stopwatch clock = System.Diagnostics.Stopwatch.StartNew();
    long lastDrawMs = -1000;

    public void Report((long Done, long Total) value)
    {
        if (Console.IsErrorRedirected || clock.ElapsedMilliseconds - lastDrawMs < 200) return;
        lastDrawMs = clock.ElapsedMilliseconds;
        var frac = value.Total > 0 ? (double)value.Done / value.Total : 0;
        var filled = (int)(frac * 30);
        var rate = value.Done / Math.Max(clock.Elapsed.TotalSeconds, 1e-3) / 1e6;
        Console.Error.Write($"\r{label} [{new string('#', filled)}{new string('.', 30 - filled)}] {frac * 100,5:F1}%  {rate:F1} MB/s ");
    }

    public void Done() { if (!Console.IsErrorRedirected) Console.Error.WriteLine(); }
    public void Dispose() { }
}
