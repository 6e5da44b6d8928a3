using HcService.Store;
using HcService.Api.Auth;
using HcService.Api.Runs;
using HcService.Contract.Config;
using HcService.Contract.Counting;
using HcService.Contract.Data;
using HcService.Store.Jobs;
using HcService.Store.Runs;

namespace HcService.Api;

/// <summary>GET /api/presets and GET /api/datasets.</summary>
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
        app.MapGet("/api/datasets", (HcPaths paths) =>
            {
                var catalog = new DataCatalog(paths.DataRoot);
                return TypedResults.Ok(catalog.List().Select(name =>
                {
                    var manifest = Path.Combine(catalog.Root, name, DatasetManifest.FileName);
                    if (!File.Exists(manifest)) return new DatasetInfo(name, "unknown", 0, -1);
                    // One broken dataset is listed as such; it does not hide the others.
                    try
                    {
                        var m = DatasetManifest.Parse(File.ReadAllText(manifest), manifest);
                        return new DatasetInfo(name, m.Tokenizer, m.VocabSize, m.TokenCount);
                    }
                    catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                    {
                        return new DatasetInfo(name, "invalid", 0, -1, e.Message.Replace(catalog.Root, "<data root>", StringComparison.Ordinal));
                    }
                }).ToList());
            })
            .WithName("listDatasets").WithTags("Catalog").WithSummary("Datasets under the data root");
    }
}
