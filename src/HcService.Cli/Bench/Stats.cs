namespace HcService.Cli.Bench;

static class Stats
{
    public static double Median(IReadOnlyCollection<double> xs)
    {
        var o = xs.Order().ToList();
        return o.Count % 2 == 1 ? o[o.Count / 2] : (o[o.Count / 2 - 1] + o[o.Count / 2]) / 2;
    }
}
