using System.Text.Json;

namespace HcService.Cli.Tests;

public class ParamsCommandTests
{
    [Fact]
    public void PrintsThePapersCountsForOlmo1B()
    {
        var r = HcProcess.Run("params", "--preset", "olmo-1b", "--connection", "dynamic-hc", "--rate", "4");
        Assert.Equal(0, r.ExitCode);
        var rows = r.Stdout.Split('\n');
        var residual = Assert.Single(rows, l => l.StartsWith("residual "));
        var dhc = Assert.Single(rows, l => l.StartsWith("dhc-x4 "));
        Assert.Contains("1,176,764,416", residual);
        Assert.Contains("394,048", dhc);
        Assert.Contains("1,177,158,464", dhc);   // 1,176,764,416 + 394,048
    }

    [Fact]
    public void JsonOutputCarriesEveryPresetCount()
    {
        var r = HcProcess.Run("params", "--preset", "olmoe-1b-7b", "--connection", "static-hc", "--rate", "4", "--json");
        Assert.Equal(0, r.ExitCode);
        var rows = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(2, rows.GetArrayLength());
        Assert.Equal(6_919_094_272, rows[0].GetProperty("paperParams").GetInt64());
        Assert.Equal(6_919_161_856, rows[0].GetProperty("totalParams").GetInt64());
        Assert.Equal("shc-x4", rows[1].GetProperty("connection").GetString());
        Assert.Equal(32L * 24, rows[1].GetProperty("hcExtraParams").GetInt64());   // 2L modules x n(n+2)
    }

    [Theory]   // OLMo-1B: L = 16, d = 2048, so 32 connection modules (docs/hc-math.md section 11.4)
    [InlineData(new[] { "--connection", "mhc", "--rate", "4" }, "mhc-x4", 32L * (4 * 2048 * (8 + 16) + 3 + 8 + 16))]           // phi, a_*, b_pre, b_post, b_res
    [InlineData(new[] { "--connection", "mhc-lite", "--rate", "3" }, "mhc-lite-x3", 32L * (3 * 2048 * (6 + 6) + 3 + 6 + 6))]  // 3! = 6 permutations
    [InlineData(new[] { "--connection", "frac", "--fractions", "4" }, "dfc-m4", 32L * (4 * 9 + 512 * 9 + 2))]                   // [Y | A], B; W (d/m x 2m+1), s_a, s_b
    [InlineData(new[] { "--connection", "frac", "--fractions", "4", "--static" }, "sfc-m4", 32L * (4 * 9))]
    public void PrintsTheHcFamilysCountsForOlmo1B(string[] connection, string label, long extra)
    {
        var r = HcProcess.Run(["params", "--preset", "olmo-1b", .. connection, "--json"]);
        Assert.True(r.ExitCode == 0, r.Output);
        var rows = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(label, rows[1].GetProperty("connection").GetString());
        Assert.Equal(extra, rows[1].GetProperty("hcExtraParams").GetInt64());
        Assert.Equal(1_176_764_416 + extra, rows[1].GetProperty("totalParams").GetInt64());
    }

    [Theory]
    [InlineData("mhc", "--rate", "4")]
    [InlineData("mhc-lite", "--rate", "4")]
    [InlineData("frac", "--fractions", "8")]
    public void TheCountsPrintedAreTheInstantiatedModels(string connection, string option, string value)
    {
        var r = HcProcess.Run("params", "--preset", "tiny", "--connection", connection, option, value, "--json");
        Assert.True(r.ExitCode == 0, r.Output);
        var row = JsonDocument.Parse(r.Stdout).RootElement[1];
        var config = HcService.Contract.Config.Presets.Tiny with
        {
            Connection = connection switch
            {
                "mhc" => HcService.Contract.Config.ConnectionConfig.Mhc(4),
                "mhc-lite" => HcService.Contract.Config.ConnectionConfig.MhcLite(4),
                _ => HcService.Contract.Config.ConnectionConfig.Frac(8),
            },
        };
        using var scope = TorchSharp.torch.NewDisposeScope();
        var model = new HcService.Core.Model.LanguageModel(config);
        Assert.Equal(model.parameters().Sum(p => p.numel()), row.GetProperty("totalParams").GetInt64());
        Assert.Equal(model.named_parameters().Where(p => p.name.Contains("_conn.")).Sum(p => p.parameter.numel()), row.GetProperty("hcExtraParams").GetInt64());
    }

    [Fact]
    public void InvalidInputNamesTheFieldTheValueAndWhatIsAllowed()
    {
        var r = HcProcess.Run("params", "--preset", "olmo-3b");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("model.preset = 'olmo-3b': must be one of tiny, small, olmo-1b, olmo-7b, olmoe-1b-7b", r.Stderr);

        r = HcProcess.Run("params", "--preset", "tiny", "--connection", "dynamic-hc", "--rate", "0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("connection.rate = 0: must be an integer in [1, 64]", r.Stderr);

        r = HcProcess.Run("params", "--preset", "tiny", "--connection", "mhc-lite", "--rate", "5");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("connection.rate = 5: must be an integer in [1, 4] for mhc-lite", r.Stderr);
        r = HcProcess.Run("params", "--preset", "tiny", "--connection", "frac", "--fractions", "5");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("connection.fractions = 5: must be a divisor of dModel = 64", r.Stderr);
    }
}
