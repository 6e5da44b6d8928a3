using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Core.Counting;

namespace HcService.Cli.Local;

/// <summary>
/// `hc params`: analytic parameter count, FLOPs per token and training-memory estimate for a preset with any
/// connection, against its residual baseline (docs/hc-math.md section 6).
/// </summary>
static class ParamsCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var microBatch = new Option<int>("--micro-batch") { Description = "Sequences per micro-batch for the memory estimate", DefaultValueFactory = _ => 1 };
        var fp32 = new Option<bool>("--fp32") { Description = "Memory estimate for fp32 training instead of bf16" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var cmd = new Command("params", "Parameter count, FLOPs per token and memory estimate of a model (base, HC extra, total)");
        model.AddTo(cmd);
        cmd.Add(microBatch);
        cmd.Add(fp32);
        cmd.Add(json);
        cmd.SetAction(r =>
        {
            var host = model.Host(r);
            var connections = model.ConnectionOrNull(r) is { } one
                ? (one.Type == ConnectionType.Residual ? [one] : new[] { ConnectionConfig.Residual, one })
                : [ConnectionConfig.Residual, ConnectionConfig.StaticHc(4), ConnectionConfig.DynamicHc(4)];
            var rows = connections.Select(c => Row.Of(host with { Connection = c }, r.GetValue(microBatch), !r.GetValue(fp32))).ToList();
            if (r.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
            else
                Print(host, rows, r.GetValue(microBatch), !r.GetValue(fp32));
            return 0;
        });
        return cmd;
    }

    sealed record Row(string Connection, long BaseParams, long HcExtraParams, long TotalParams, long PaperParams, long ActiveParams,
        long ForwardFlopsPerToken, long TrainingFlopsPerToken, double HcFlopsOverheadPercent,
        long WeightsAndOptimizerBytes, long ActivationBytes, long HcActivationBytes, long TotalMemoryBytes)
    {
        public static Row Of(ModelConfig c, int microBatch, bool bf16)
        {
            c.EnsureValid();
            var p = ModelCounter.Parameters(c);
            var f = ModelCounter.Flops(c);
            var m = ModelCounter.Memory(c, microBatch, bf16);
            return new(c.Connection.Label, p.Base, p.HyperConnections, p.Total, p.PaperBase + p.HyperConnections, p.Active,
                f.Forward, f.Training, 100 * f.HyperConnectionOverhead, m.WeightsAndOptimizer, m.Activations, m.ActivationsHyperConnections, m.Total);
        }
    }

    static void Print(ModelConfig host, IReadOnlyList<Row> rows, int microBatch, bool bf16)
    {
        Console.WriteLine($"{host.Name}: {Names.Of(host.Architecture)}, L={host.Layers}, d={host.DModel}, heads={host.Heads}, " +
            (host.IsMoe ? $"experts={host.Moe.Experts} top-{host.Moe.TopK} hidden={host.Moe.ExpertHidden}" : $"mlp={host.MlpHidden}") +
            (host.Vision is { } vision ? $", seq={host.MaxSeqLen} (patches and class token), classes={vision.Classes}, {host.Norm}"
                : $", seq={host.MaxSeqLen}, vocab={host.Vocab} (emb {host.EmbeddingSize}), {(host.TieEmbeddings ? "tied" : "untied")}, {host.Norm}"));
        var table = new List<string[]>
        {
            new[] { "connection", "base params", "HC extra", "total", "paper count", "active", "fwd FLOPs/tok", "train FLOPs/tok", "HC FLOPs", "weights+optim", "activations", "HC act.", "memory" },
        };
        foreach (var r in rows)
            table.Add([r.Connection, N(r.BaseParams), N(r.HcExtraParams), N(r.TotalParams), N(r.PaperParams), N(r.ActiveParams),
                G(r.ForwardFlopsPerToken), G(r.TrainingFlopsPerToken), $"+{r.HcFlopsOverheadPercent.ToString("F3", CultureInfo.InvariantCulture)}%",
                Bytes(r.WeightsAndOptimizerBytes), Bytes(r.ActivationBytes), Bytes(r.HcActivationBytes), Bytes(r.TotalMemoryBytes)]);
        var widths = Enumerable.Range(0, table[0].Length).Select(i => table.Max(row => row[i].Length)).ToArray();
        foreach (var row in table)
            Console.WriteLine(string.Join("  ", row.Select((cell, i) => i == 0 ? cell.PadRight(widths[i]) : cell.PadLeft(widths[i]))));
        if (host.Vision is { } v)
            Console.WriteLine($"{host.Name}: {N(rows[0].TotalParams)} parameters ({M(rows[0].TotalParams)}; every weight and bias, the ViT convention), " +
                $"{v.ImageSize} px images in {v.PatchSize} px patches ({v.Patches} and a class token), {v.Channels} channel(s), {v.Classes} classes.");
        Console.WriteLine($"paper count: {(host.IsVision ? "every weight and bias (ViT's convention)" : "without QK-norm and final-norm weights (the paper's Table 7 convention)")}. Memory: {(bf16 ? "bf16" : "fp32")} training, " +
            $"micro-batch {microBatch} x {host.MaxSeqLen} tokens; weights+optim = fp32 master, grads, Adam moments{(bf16 ? " + bf16 copy" : "")}.");
    }

    static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
    /// <summary>Millions with one decimal, as papers print them (86,567,656 -> 86.6M).</summary>
    static string M(long v) => (v / 1e6).ToString("F1", CultureInfo.InvariantCulture) + "M";
    static string G(long v) => (v / 1e9).ToString("F3", CultureInfo.InvariantCulture) + " G";
    static string Bytes(long v) => v >= 1L << 30 ? (v / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB"
        : (v / (double)(1L << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";
}
