using HcService.Store;
using HcService.Api.Auth;
using HcService.Api.Runs;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Contract.Data;
using HcService.Store.Jobs;
using HcService.Store.Runs;

namespace HcService.Api;

/// <summary>GET /api/presets (datasets: <see cref="DatasetsApi"/>).</summary>
public static class CatalogApi
{
    public static void MapCatalog(this IEndpointRouteBuilder routes)
    {
        var app = routes.MapGroup("").RequireScope(Scopes.Read);
        app.MapGet("/api/presets", () => TypedResults.Ok(Presets.All.Values.Select(p => new PresetInfo(
                p.Name, p.Layers, p.DModel, p.Heads, p.MlpHidden, p.MaxSeqLen, p.Vocab, Names.Of(p.Architecture),
                ModelCounter.Parameters(p).Total, ModelCounter.Parameters(p with { Connection = ConnectionConfig.DynamicHc(4) }).Total,
                ModelCounter.Flops(p).Training, ModelCounter.Memory(p).Total)).ToList()))
            .WithName("listPresets").WithTags("Catalog").WithSummary("Model presets with parameter, FLOP and memory estimates (bf16, one sequence per micro-batch)");
    }
}
