using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using HcService.Contract.Data;

namespace HcService.Service.Tests;

/// <summary>POST /api/datasets and `hc data push`: a dataset of one's own reaches the service, a run trains on it (and
/// validates on its held-out tail), and every bad upload is refused with the field, leaving nothing behind.</summary>
[Collection("service")]
public class DatasetUploadTests(ServiceFixture svc)
{
    static readonly string Books = Path.Combine(RepoPaths.Root, "data", "corpus", "train");

    [Fact]
    public async Task PushedTextTrainsThroughTheServiceOnItsHeldOutTail()
    {
        // Text over HTTP: tokenised by the service, one document, the end-of-text token after it. 1.2 MiB: over the API's
        // 1 MiB limit for other bodies, under HC_UPLOAD_MAX_MIB.
        var text = await File.ReadAllTextAsync(Path.Combine(Books, "gutenberg-pg2701-moby-dick-or-the-whale-melville.txt"));
        Assert.InRange(Encoding.UTF8.GetByteCount(text), (1 << 20) + 1, ServiceFixture.UploadMaxMiB << 20);
        using var posted = await svc.Http.PostAsync("api/datasets?name=moby-up&tokenizer=bytes", new StringContent(text, Encoding.UTF8, "text/plain"));
        Assert.True(posted.StatusCode == HttpStatusCode.Created, await posted.Content.ReadAsStringAsync());
        Assert.Equal("/api/datasets/moby-up", posted.Headers.Location!.OriginalString);
        var info = (await posted.Content.ReadFromJsonAsync<JsonNode>())!;
        Assert.Equal(Encoding.UTF8.GetByteCount(text) + 1, info["tokens"]!.GetValue<long>());
        var located = (await svc.Http.GetFromJsonAsync<JsonNode>(posted.Headers.Location!.OriginalString.TrimStart('/')))!;
        Assert.Equal(info["tokens"]!.GetValue<long>(), located["tokens"]!.GetValue<long>());
        Assert.Equal(HttpStatusCode.NotFound, (await svc.Http.GetAsync("api/datasets/no-such-dataset")).StatusCode);
        using (var stored = new TokenDataset(Path.Combine(svc.DataRoot, "moby-up")))
        {
            var head = new long[5];
            stored.Read(0, head);
            Assert.Equal(Encoding.UTF8.GetBytes(text[..5]).Select(b => (long)b), head);
        }

        // A folder made by `hc data prepare`, pushed by the CLI: its token file as it is.
        var prepared = Path.Combine(RepoPaths.TempDir("push"), "frankenstein-up");
        var prepare = await HcProcess.RunAsync("data", "prepare", Path.Combine(Books, "gutenberg-pg41445-frankenstein-shelley.txt"), "--out", prepared, "--preset", "tiny");
        Assert.True(prepare.ExitCode == 0, prepare.Output);
        var push = await HcProcess.RunAsync("data", "push", prepared, "--server", svc.Url, "--api-key", svc.AdminKey);
        Assert.True(push.ExitCode == 0, push.Output);
        Assert.Contains("dataset frankenstein-up: 418,", push.Stdout);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(prepared, "tokens.npy")), await File.ReadAllBytesAsync(Path.Combine(svc.DataRoot, "frankenstein-up", "tokens.npy")));
        var listed = (await svc.Http.GetFromJsonAsync<JsonArray>("api/datasets"))!.Select(d => d!["name"]!.GetValue<string>()).ToList();
        Assert.Contains("moby-up", listed);
        Assert.Contains("frankenstein-up", listed);

        // A run that names only the uploaded dataset: it trains, and validates on the dataset's own tail.
        var id = await svc.SubmitOk("""
            { "name": "own-data", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 20480, "evalTokens": "2K", "evalInterval": 20480, "checkpointInterval": 20480 },
              "data": { "train": "frankenstein-up" } }
            """);
        var (status, _) = await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(3));
        Assert.True(status == "succeeded", svc.WorkerLog);
        var heldOut = await svc.Series(id, "val/frankenstein-up.heldout/loss");
        Assert.Equal([0L, 20L], heldOut.Select(p => p.Step));
        Assert.True(heldOut[1].Value < heldOut[0].Value - 0.5, $"{heldOut[0].Value} -> {heldOut[1].Value}");
        Assert.Empty(await svc.Series(id, "val/valid-austen-bytes/loss"));

        // A dataset too short to hold a tail out is refused at submission, naming data.train and the length it needs.
        using var small = await svc.Http.PostAsync("api/datasets?name=short-up&tokenizer=bytes", new StringContent(new string('x', 599), Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.Created, small.StatusCode);
        var (status400, problem) = await svc.Submit("""
            { "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "residual" },
              "training": { "tokenBudget": 20480 }, "data": { "train": "short-up" } }
            """);
        Assert.Equal(HttpStatusCode.BadRequest, status400);
        Assert.Contains("data.train = 'short-up': must be a dataset of at least 1290 tokens to hold out a validation tail of at most 1/10 ('short-up' has 600)",
            problem!.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }

    [Fact]
    public async Task BadUploadsAreRefusedWithTheFieldAndLeaveNothingBehind()
    {
        var before = Directory.GetFileSystemEntries(svc.DataRoot).Order().ToList();
        async Task<(HttpStatusCode Status, string Body)> Post(string query, HttpContent content)
        {
            using var response = await svc.Http.PostAsync("api/datasets?" + query, content);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        static ByteArrayContent Npy(byte[] bytes) => new(bytes) { Headers = { ContentType = new("application/x-npy") } };
        static byte[] Tokens(ushort[] ids, long? claimed = null)
        {
            using var ms = new MemoryStream();
            NpyFile.WriteHeader(ms, TokenDType.UInt16, claimed ?? ids.Length);
            foreach (var id in ids) ms.Write(BitConverter.GetBytes(id));
            return ms.ToArray();
        }
        var ok = Tokens([72, 105, 0, 33]);

        var cases = new (string Query, HttpContent Content, HttpStatusCode Status, string Expected)[]
        {
            ("name=../escape&tokenizer=bytes", Npy(ok), HttpStatusCode.BadRequest, "name = '../escape': must be a dataset name"),
            ("name=newline%0A&tokenizer=bytes", Npy(ok), HttpStatusCode.BadRequest, "name contains a control character"),
            ("name=fine&tokenizer=sentencepiece", Npy(ok), HttpStatusCode.BadRequest, "tokenizer = 'sentencepiece': must be one of gpt2, bytes"),
            ("name=ids&tokenizer=bytes", Npy(Tokens([72, 300, 0])), HttpStatusCode.BadRequest, "token ids below the bytes vocabulary 256: token 1 is 300"),
            ("name=short&tokenizer=bytes", Npy(Tokens([72, 105], claimed: 5)), HttpStatusCode.BadRequest, "the header says 5 tokens (10 bytes), the body holds 4 bytes"),
            ("name=notnpy&tokenizer=bytes", Npy(Encoding.ASCII.GetBytes("just some bytes, not a .npy")), HttpStatusCode.BadRequest, "not a .npy file"),
            ("name=empty&tokenizer=bytes", new StringContent("", Encoding.UTF8, "text/plain"), HttpStatusCode.BadRequest, "the body is empty"),
            ("name=latin&tokenizer=bytes", new ByteArrayContent([0x63, 0x61, 0x66, 0xE9]) { Headers = { ContentType = new("text/plain") } }, HttpStatusCode.BadRequest, "UTF-8 text (byte 3 is not UTF-8)"),
            ("name=json&tokenizer=bytes", JsonContent.Create(new { text = "hi" }), HttpStatusCode.UnsupportedMediaType, "Content-Type = 'application/json; charset=utf-8': must be text/plain"),
            ("name=moby-up-dup&tokenizer=bytes", Npy(ok), HttpStatusCode.Created, "\"tokens\":4"),
            ("name=moby-up-dup&tokenizer=bytes", Npy(Tokens([1, 2, 3, 4, 5])), HttpStatusCode.Conflict, "a dataset named 'moby-up-dup' already exists"),
        };
        foreach (var (query, content, expectedStatus, expected) in cases)
        {
            var (status, body) = await Post(query, content);
            Assert.True(status == expectedStatus, $"{query}: {(int)status} {body}");
            Assert.True(body.Contains(expected, StringComparison.Ordinal), $"{query}: {body}");
        }
        using (var kept = new TokenDataset(Path.Combine(svc.DataRoot, "moby-up-dup")))
            Assert.Equal(4, kept.Length);   // the conflicting upload replaced nothing

        // Over HC_UPLOAD_MAX_MIB: 413 from the server, from the declared length. The client asks before sending the body
        // (Expect: 100-continue, as curl does for large bodies); without that the server's answer can race the client's
        // writes, and the client may see the closed connection instead of the 413.
        using (var big = new HttpRequestMessage(HttpMethod.Post, "api/datasets?name=big&tokenizer=bytes")
               {
                   Content = new StringContent(new string('a', (ServiceFixture.UploadMaxMiB << 20) + 1), Encoding.UTF8, "text/plain"),
               })
        {
            big.Headers.ExpectContinue = true;
            using var tooBig = await svc.Http.SendAsync(big);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
        }

        // Nothing half-made: only the one accepted dataset is new, no staging folder or body file remains.
        var after = Directory.GetFileSystemEntries(svc.DataRoot).Order().ToList();
        Assert.Equal(before.Append(Path.Combine(svc.DataRoot, "moby-up-dup")).Order(), after);

        // Scopes: a read key cannot upload; the CLI says which option is missing and maps the answers to exit codes.
        using var reader = svc.Client(await svc.CreateKey("read"));
        using var forbidden = await reader.PostAsync("api/datasets?name=r&tokenizer=bytes", Npy(ok));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        var text = Path.Combine(RepoPaths.TempDir("push-text"), "a.txt");
        await File.WriteAllTextAsync(text, "Call me Ishmael.");
        var unnamed = await HcProcess.RunAsync("data", "push", text, "--preset", "tiny", "--server", svc.Url, "--api-key", svc.AdminKey);
        Assert.Equal(2, unnamed.ExitCode);
        Assert.Contains("--name = '(not given)'", unnamed.Stderr);
        var again = await HcProcess.RunAsync("data", "push", text, "--preset", "tiny", "--name", "moby-up-dup", "--server", svc.Url, "--api-key", svc.AdminKey);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("409", again.Stderr);
        Assert.Equal(HttpStatusCode.OK, (await svc.Http.GetAsync("healthz")).StatusCode);
    }
}
