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

    [Fact]
    public void InvalidInputNamesTheFieldTheValueAndWhatIsAllowed()
    {
        var r = HcProcess.Run("params", "--preset", "olmo-3b");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("model.preset = 'olmo-3b': must be one of tiny, small, olmo-1b, olmo-7b, olmoe-1b-7b", r.Stderr);

        r = HcProcess.Run("params", "--preset", "tiny", "--connection", "dynamic-hc", "--rate", "0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("connection.rate = 0: must be an integer in [1, 64]", r.Stderr);
    }
}
