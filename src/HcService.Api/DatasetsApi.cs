using HcService.Api.Auth;
using HcService.Api.Runs;
using HcService.Contract.Config;
using HcService.Contract.Data;
using HcService.Store;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace HcService.Api;

/// <summary>GET /api/datasets (the data root's datasets) and POST /api/datasets (a new one from text or a token file).</summary>
public static class DatasetsApi
{
    /// <summary>Content types of a token file; text/plain is text to tokenise.</summary>
    public static readonly string[] TokenTypes = ["application/x-npy", "application/octet-stream"];
    const string TextType = "text/plain";

    public static void MapDatasets(this IEndpointRouteBuilder routes)
    {
        var settings = routes.ServiceProvider.GetRequiredService<HcSettings>();
        routes.MapGet("/api/datasets", List).RequireScope(Scopes.Read)
            .WithName("listDatasets").WithTags("Catalog").WithSummary("Datasets under the data root");
        routes.MapGet("/api/datasets/{name}", Get).RequireScope(Scopes.Read)
            .WithName("getDataset").WithTags("Catalog").WithSummary("One dataset under the data root");
        routes.MapPost("/api/datasets", Upload).RequireScope(Scopes.Submit)
            .WithName("uploadDataset").WithTags("Catalog").WithSummary("Add a dataset: UTF-8 text to tokenise, or a .npy file of token ids")
            .WithDescription("The body is the dataset: text/plain (one document, tokenised with `tokenizer`) or application/x-npy " +
                             "(a 1-D uint16 or uint32 .npy of token ids from `tokenizer`, every id checked against its vocabulary). " +
                             $"At most HC_UPLOAD_MAX_MIB (now {settings.UploadMaxMiB} MiB). The dataset appears under the data root " +
                             "only when complete and valid; a name in use is refused (409): datasets are never replaced. " +
                             "A spec then names it in data.train (and validates on a held-out tail of it unless data.validation is given).")
            // Documented, not matched: a body of another type gets this route's own 415 that names the allowed types.
            .WithMetadata(new HcService.Api.OpenApi.RequestBodyDoc("The dataset: text to tokenise, or a .npy of token ids",
                [(TextType, "UTF-8 text, one document", false), .. TokenTypes.Select(t => (t, "a 1-D uint16 or uint32 .npy of token ids", true))]))
            .ProducesProblem(415)
            .WithMetadata(new RequestSizeLimitAttribute((long)settings.UploadMaxMiB << 20));
    }

    static Ok<List<DatasetInfo>> List(HcPaths paths)
    {
        var catalog = new DataCatalog(paths.DataRoot);
        return TypedResults.Ok(catalog.List().Select(name => Info(catalog, name)).ToList());
    }

    /// <param name="name">A dataset's name.</param>
    static Results<Ok<DatasetInfo>, NotFound<ProblemDetails>> Get(HcPaths paths, string name)
    {
        var catalog = new DataCatalog(paths.DataRoot);
        return catalog.List().Contains(name, StringComparer.Ordinal) ? TypedResults.Ok(Info(catalog, name))
            : TypedResults.NotFound(new ProblemDetails { Title = "Dataset not found", Detail = $"no dataset is named '{name}' under the data root", Status = 404 });
    }

    static DatasetInfo Info(DataCatalog catalog, string name)
    {
        var manifest = Path.Combine(catalog.Root, name, DatasetManifest.FileName);
        if (!File.Exists(manifest)) return new DatasetInfo(name, "unknown", 0, -1);
        // One broken dataset is listed as such; it does not hide the others.
        try
        {
            var text = File.ReadAllText(manifest);
            if (ImageManifest.IsImageManifest(text))
                return new DatasetInfo(name, "images", 0, -1) { Classes = ImageManifest.Parse(text, manifest).Classes };
            var m = DatasetManifest.Parse(text, manifest);
            return new DatasetInfo(name, m.Tokenizer, m.VocabSize, m.TokenCount);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return new DatasetInfo(name, "invalid", 0, -1, e.Message.Replace(catalog.Root, "<data root>", StringComparison.Ordinal));
        }
    }

    /// <param name="name">The new dataset's name: a letter or digit, then letters, digits, '.', '_', '-' (at most 128); not in use.</param>
    /// <param name="tokenizer">gpt2 or bytes: the tokenizer to tokenise the text with, or the one that made the token ids.</param>
    static async Task<Results<Created<DatasetInfo>, ValidationProblem, Conflict<ProblemDetails>, ProblemHttpResult>> Upload(
        HttpRequest request, HcPaths paths, ILoggerFactory logs, string name, string tokenizer, CancellationToken ct)
    {
        var type = request.ContentType?.Split(';')[0].Trim().ToLowerInvariant();
        var isTokens = type is not null && TokenTypes.Contains(type);
        if (!isTokens && type != TextType)
            return TypedResults.Problem(title: "Unsupported dataset content type", statusCode: 415,
                detail: $"Content-Type = '{request.ContentType ?? "(none)"}': must be {TextType} (text to tokenise) or {string.Join(" or ", TokenTypes)} (a .npy of token ids)");
        if (type == TextType && request.ContentType!.Contains("charset", StringComparison.OrdinalIgnoreCase)
            && !request.ContentType.Contains("utf-8", StringComparison.OrdinalIgnoreCase))
            return Problems.Invalid([new("Content-Type", request.ContentType, "text/plain in UTF-8 (charset=utf-8 or none)")], "The dataset is invalid");

        // The name, the tokenizer and the name's being free are checked before the body is read (a refused upload is
        // refused at once), and again by the import (another upload may have taken the name meanwhile).
        var body = "";
        try
        {
            DatasetImport.Check(paths.DataRoot, name, tokenizer, isTokens);
            DatasetImport.RemoveStale(paths.DataRoot, TimeSpan.FromDays(1));
            body = DatasetImport.NewBodyFile(paths.DataRoot);
            await using (var file = new FileStream(body, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                await request.Body.CopyToAsync(file, ct);
            // Tokenising and the id scan are CPU work: off the request thread's pool slot.
            var manifest = await Task.Run(() => DatasetImport.Import(paths.DataRoot, name, tokenizer, isTokens, body), ct);
            logs.CreateLogger("HcService.Datasets").LogInformation("dataset {Name} added: {Tokens} tokens ({Tokenizer})", name, manifest.TokenCount, manifest.Tokenizer);
            return TypedResults.Created($"/api/datasets/{name}", new DatasetInfo(name, manifest.Tokenizer, manifest.VocabSize, manifest.TokenCount));
        }
        catch (ConfigException e) { return Problems.Invalid(e.Errors, "The dataset is invalid"); }
        catch (DatasetExistsException e) { return TypedResults.Conflict(new ProblemDetails { Title = "The dataset exists", Detail = e.Message, Status = 409 }); }
        finally { if (body.Length > 0) File.Delete(body); }
    }
}
