using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace HcService.Cli.Local;

/// <summary>
/// `hc report run1 run2 ...`: the validation-loss curves of local runs (their metrics.jsonl) side by side as Markdown,
/// one table per validation set, rows by tokens, and the final loss of each run minus the first run's (the baseline).
/// </summary>
static class ReportCommand
{
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs") { Description = "Run folders written by `hc train` (the first is the baseline)", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("report", "Validation-loss curves of local runs side by side (Markdown), with final deltas to the first run");
        cmd.Add(runs);
        cmd.SetAction(r =>
        {
            Console.Write(Render(r.GetValue(runs)!));
            return 0;
        });
        return cmd;
    }

    public static string Render(IReadOnlyList<string> runDirs)
    {
        var ci = CultureInfo.InvariantCulture;
        // run -> dataset -> tokens -> loss (the last record wins: a resumed run may repeat a step)
        var curves = runDirs.Select(dir =>
        {
            var file = Path.Combine(dir, "metrics.jsonl");
            if (!File.Exists(file)) throw new HcService.Contract.Config.ConfigException([new("runs", dir, "a run folder with metrics.jsonl")]);
            var byDataset = new Dictionary<string, SortedDictionary<long, double>>();
            foreach (var line in File.ReadLines(file))
            {
                var e = JsonDocument.Parse(line).RootElement;
                if (e.GetProperty("kind").GetString() != "validation") continue;
                var set = e.GetProperty("dataset").GetString()!;
                if (!byDataset.TryGetValue(set, out var curve)) byDataset[set] = curve = [];
                curve[e.GetProperty("tokens").GetInt64()] = e.GetProperty("loss").GetDouble();
            }
            return (Name: Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/')), Curves: byDataset);
        }).ToList();

        var sb = new StringBuilder();
        foreach (var set in curves.SelectMany(c => c.Curves.Keys).Distinct().Order(StringComparer.Ordinal))
        {
            sb.AppendLine(ci, $"#### Validation loss on {set}");
            sb.AppendLine();
            sb.AppendLine("| tokens | " + string.Join(" | ", curves.Select(c => c.Name)) + " |");
            sb.AppendLine("|---:|" + string.Concat(curves.Select(_ => "---:|")));
            var tokens = curves.SelectMany(c => c.Curves.GetValueOrDefault(set)?.Keys ?? Enumerable.Empty<long>()).Distinct().Order();
            foreach (var t in tokens)
                sb.AppendLine(t.ToString("N0", ci).Insert(0, "| ") + " | " + string.Join(" | ", curves.Select(c =>
                    c.Curves.GetValueOrDefault(set)?.TryGetValue(t, out var l) == true ? l.ToString("F4", ci) : "")) + " |");
            var finals = curves.Select(c => c.Curves.GetValueOrDefault(set)?.LastOrDefault() is { Key: > 0 } kv ? kv.Value : double.NaN).ToList();
            sb.AppendLine($"| final - {curves[0].Name} | " + string.Join(" | ", finals.Select(f => (f - finals[0]).ToString("+0.0000;-0.0000;0.0000", ci))) + " |");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
