using System.CommandLine;
using System.Globalization;
using HcService.Contract.Config;
using HcService.Contract.Data;

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
        var preset = new Option<string?>("--preset") { Description = $"The model preset the dataset is for ({string.Join(", ", LanguagePresets)}): picks the tokenizer whose vocabulary it reads" };
        preset.AcceptOnlyFromAmong([.. LanguagePresets]);
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

        var pushInputs = new Argument<string[]>("inputs") { Description = "A dataset folder made by `hc data prepare`, or text files / folders of *.txt files to tokenise first", Arity = ArgumentArity.OneOrMore };
        var name = new Option<string?>("--name") { Description = "The dataset's name on the service (default: the dataset folder's name)" };
        var pushTokenizer = new Option<string?>("--tokenizer") { Description = "For text: gpt2 or bytes; default: the one --preset's model reads" };
        pushTokenizer.AcceptOnlyFromAmong([.. TextTokenizers.Names]);
        var pushPreset = new Option<string?>("--preset") { Description = "For text: the model preset the dataset is for (picks the tokenizer)" };
        pushPreset.AcceptOnlyFromAmong([.. LanguagePresets]);
        var server = HcService.Cli.Client.ClientCommands.ServerOption();
        var apiKey = HcService.Cli.Client.ClientCommands.ApiKeyOption();
        var push = new Command("push", "Upload a dataset to the service (POST /api/datasets): a prepared dataset folder, or text tokenised here first")
        {
            pushInputs, name, pushTokenizer, pushPreset, server, apiKey,
        };
        push.SetAction(async (r, ct) =>
        {
            var paths = r.GetValue(pushInputs)!;
            var folder = paths is [var one] && File.Exists(Path.Combine(one, DatasetManifest.FileName)) ? one : null;   // prepared, or text
            if (r.GetValue(name) is null && folder is null)
                throw new ConfigException([new("--name", "(not given)", "the dataset's name on the service (text has no dataset folder to take it from)")]);
            var (file, tokenizerName, defaultName, temp) = folder is not null ? PreparedTokenFile(folder, r.GetValue(pushTokenizer))
                : TokeniseToPush(paths, r.GetValue(pushTokenizer), r.GetValue(pushPreset));
            try
            {
                var datasetName = r.GetValue(name) ?? defaultName!;
                using var http = HcService.Cli.Client.ClientCommands.Client(r.GetValue(server), r.GetValue(apiKey));
                http.Timeout = TimeSpan.FromMinutes(30);   // a large file over a slow link
                await using var stream = File.OpenRead(file);
                using var content = new StreamContent(stream);
                content.Headers.ContentType = new("application/x-npy");
                var size = stream.Length;
                Console.Error.WriteLine($"uploading {size.ToString("N0", CultureInfo.InvariantCulture)} bytes of {tokenizerName} tokens as '{datasetName}'...");
                // Expect: 100-continue: a refused upload (name in use, over the size limit) is answered before the body is sent.
                using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/datasets?name={Uri.EscapeDataString(datasetName)}&tokenizer={tokenizerName}") { Content = content };
                request.Headers.ExpectContinue = true;
                using var response = await http.SendAsync(request, ct);
                var body = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode) return HcService.Cli.Client.ClientCommands.Fail(response, body);
                var info = System.Text.Json.Nodes.JsonNode.Parse(body)!;
                Console.WriteLine($"dataset {info["name"]}: {info["tokens"]!.GetValue<long>().ToString("N0", CultureInfo.InvariantCulture)} tokens ({info["tokenizer"]}) " +
                                  $"on {http.BaseAddress}; a spec names it as \"data\": {{ \"train\": \"{info["name"]}\" }}");
                return ExitCodes.Ok;
            }
            finally
            {
                if (temp is not null) Directory.Delete(temp, recursive: true);
            }
        });

        var data = new Command("data", "Token datasets");
        data.Add(prepare);
        data.Add(list);
        data.Add(push);
        return data;
    }

    /// <summary>What `hc data push` uploads of a prepared dataset: its one token file (its manifest names the tokenizer)
    /// under the folder's name.</summary>
    static (string File, string Tokenizer, string? Name, string? Temp) PreparedTokenFile(string folder, string? tokenizer)
    {
        using var dataset = new TokenDataset(Path.GetFullPath(folder));
        var m = dataset.Manifest;
        if (m.Files.Count != 1 || !m.Files[0].Name.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || !TextTokenizers.Names.Contains(m.Tokenizer))
            throw new ConfigException([new("inputs", folder, $"a dataset of one .npy token file made by {string.Join(" or ", TextTokenizers.Names)} (as `hc data prepare` writes), or text files")]);
        if (tokenizer is not null && tokenizer != m.Tokenizer)
            throw new ConfigException([new("--tokenizer", tokenizer, $"absent or {m.Tokenizer}: the dataset's manifest says its tokens are {m.Tokenizer}")]);
        return (Path.Combine(folder, m.Files[0].Name), m.Tokenizer, dataset.Name, null);
    }

    /// <summary>What `hc data push` uploads of text: tokenised into a temporary folder (returned, to delete).</summary>
    static (string File, string Tokenizer, string? Name, string? Temp) TokeniseToPush(string[] inputs, string? tokenizer, string? preset)
    {
        var tok = TextTokenizers.Create(tokenizer ?? TokenizerFor(preset));
        var temp = Directory.CreateTempSubdirectory("hc-push-").FullName;
        try
        {
            var manifest = DatasetPreparer.Prepare(inputs, temp, tok);
            Console.Error.WriteLine($"tokenised {manifest.TokenCount.ToString("N0", CultureInfo.InvariantCulture)} tokens ({tok.Name}) from {manifest.Sources.Count} files");
            return (Path.Combine(temp, DatasetManifest.TokenFile), tok.Name, null, temp);
        }
        catch
        {
            Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    /// <summary>The presets that read token datasets (the vit-* presets read image datasets, which setup installs).</summary>
    static IEnumerable<string> LanguagePresets => Presets.All.Where(p => !p.Value.IsVision).Select(p => p.Key);

    /// <summary>The tokenizer a preset's model reads (its vocabulary: 256 bytes, else GPT-2's 50257); without a preset, an
    /// error that says which to pick for which presets, instead of a default that fails at the first training.</summary>
    internal static string TokenizerFor(string? preset)
    {
        static string Of(ModelConfig m) => m.Vocab <= 256 ? "bytes" : "gpt2";
        if (preset is not null) return Of(Presets.All[preset]);
        var byTokenizer = Presets.All.Where(p => !p.Value.IsVision).GroupBy(p => Of(p.Value)).Select(g => $"{g.Key} for {string.Join(", ", g.Select(p => p.Key))}");
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
