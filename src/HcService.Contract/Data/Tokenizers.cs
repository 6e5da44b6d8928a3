using System.Text;
using Microsoft.ML.Tokenizers;

namespace HcService.Contract.Data;

/// <summary>A tokenizer for `hc data prepare`: text to ids, with an end-of-text id between documents.</summary>
public interface ITextTokenizer
{
    /// <summary>The name recorded in a dataset's manifest ("gpt2", "bytes").</summary>
    string Name { get; }
    int VocabSize { get; }
    int EndOfText { get; }
    IReadOnlyList<int> Encode(string text);
    string Decode(IEnumerable<int> ids);
}

public static class TextTokenizers
{
    public static readonly IReadOnlyList<string> Names = ["gpt2", "bytes"];

    public static ITextTokenizer Create(string name) => name switch
    {
        "gpt2" => new Gpt2TextTokenizer(),
        "bytes" => new ByteTextTokenizer(),
        _ => throw new HcService.Contract.Config.ConfigException([new("tokenizer", name, "gpt2 or bytes")]),
    };
}

/// <summary>UTF-8 bytes as tokens (vocabulary 256). The NUL byte, which plain text never contains, ends a document.
/// For CPU-scale experiments: the transformer body dominates the FLOPs instead of a 50k-wide embedding and head.</summary>
public sealed class ByteTextTokenizer : ITextTokenizer
{
    public string Name => "bytes";
    public int VocabSize => 256;
    public int EndOfText => 0;
    public IReadOnlyList<int> Encode(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();
    public string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(ids.Where(i => i != EndOfText).Select(i => (byte)i).ToArray());
}

/// <summary>GPT-2's byte-level BPE (vocabulary 50257, &lt;|endoftext|&gt; = 50256), from Microsoft.ML.Tokenizers with
/// its embedded GPT-2 data package.</summary>
public sealed class Gpt2TextTokenizer : ITextTokenizer
{
    static readonly Lazy<TiktokenTokenizer> Tokenizer = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    public string Name => "gpt2";
    public int VocabSize => 50257;
    public int EndOfText => 50256;
    public IReadOnlyList<int> Encode(string text) => Tokenizer.Value.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);
    public string Decode(IEnumerable<int> ids) => Tokenizer.Value.Decode(ids);
}
