using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace HcService.Cli.Client;

/// <summary>One server-sent event of a run's stream: its kind (status, metric), its id and its data.</summary>
sealed record RunEvent(string Kind, string? Id, JsonNode Data);

/// <summary>The service refused the stream (a 4xx, or a 5xx on the first connection): its answer, for <see cref="ClientCommands.Fail"/>.</summary>
sealed class StreamRefusedException(HttpResponseMessage response, string body) : Exception($"{(int)response.StatusCode} {response.ReasonPhrase}")
{
    public HttpResponseMessage Response { get; } = response;
    public string Body { get; } = body;
}

/// <summary>
/// A client of GET /api/runs/{id}/events that reconnects by itself: when the connection drops, the server restarts or
/// goes quiet for longer than its keep-alive allows, it connects again with the id of the last event it received as
/// <c>Last-Event-ID</c>, so the events continue with no gap and no duplicate. The first connection fails at once (an
/// unreachable server is the caller's error to report); later ones are retried with backoff for up to
/// <see cref="GiveUpAfter"/>. <see cref="NextAsync"/> returns null once the server has sent the run's final status and
/// ended the stream (the status marked <c>final</c>). <c>fromNow</c>: start at the run's current status instead of its
/// whole history.
/// </summary>
sealed class RunEventStream(HttpClient http, long runId, string? names, Action<string>? note = null, bool fromNow = false) : IDisposable
{
    /// <summary>The server comments every 15 s; a stream silent for this long is dead.</summary>
    public static readonly TimeSpan Silence = TimeSpan.FromSeconds(45);
    public static TimeSpan GiveUpAfter { get; set; } = TimeSpan.FromMinutes(5);

    HttpResponseMessage? response;
    StreamReader? reader;
    bool connectedOnce, ended;

    /// <summary>The id of the last event received: where a reconnection resumes.</summary>
    public string? LastEventId { get; private set; }
    /// <summary>How many times the stream was resumed after a drop.</summary>
    public int Reconnects { get; private set; }

    public async Task<RunEvent?> NextAsync(CancellationToken ct)
    {
        var failing = System.Diagnostics.Stopwatch.StartNew();
        var backoff = TimeSpan.FromMilliseconds(500);
        while (!ended)
        {
            Exception? dropped = null;
            try
            {
                reader ??= await Connect(ct);
                if (await ReadEvent(reader, ct) is { } e) return e;
                if (ended) return null;
                dropped = new IOException("the server closed the stream before the run ended");
            }
            catch (Exception e) when (connectedOnce && !ct.IsCancellationRequested && e is HttpRequestException or IOException or TimeoutException or OperationCanceledException
                                      or StreamRefusedException { Response.StatusCode: >= HttpStatusCode.InternalServerError })
            {
                dropped = e;
            }
            Close();
            if (failing.Elapsed > GiveUpAfter)
                throw new HttpRequestException($"the event stream of run {runId} could not be resumed for {GiveUpAfter.TotalMinutes:0} min: {dropped.Message}", dropped);
            note?.Invoke($"run {runId}: event stream interrupted ({dropped.Message.Split('\n')[0]}); resuming after {LastEventId ?? "the start"}");
            await Task.Delay(backoff, ct);
            backoff = TimeSpan.FromSeconds(Math.Min(backoff.TotalSeconds * 2, 5));
            Reconnects++;
        }
        return null;
    }

    async Task<StreamReader> Connect(CancellationToken ct)
    {
        var query = string.Join('&', new[]
        {
            names is null ? null : $"names={Uri.EscapeDataString(names)}",
            fromNow && LastEventId is null ? "from=now" : null,   // a resumption continues where it stopped
        }.OfType<string>());
        if (query.Length > 0) query = "?" + query;
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/runs/{runId}/events{query}");
        if (LastEventId is not null) request.Headers.Add("Last-Event-ID", LastEventId);
        response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode) throw new StreamRefusedException(response, await response.Content.ReadAsStringAsync(ct));
        connectedOnce = true;
        return new StreamReader(await response.Content.ReadAsStreamAsync(ct), Encoding.UTF8);
    }

    /// <summary>The next event (comments and `retry:` lines skipped); null at the end of the stream.</summary>
    async Task<RunEvent?> ReadEvent(StreamReader r, CancellationToken ct)
    {
        string? kind = null, id = null;
        var data = new StringBuilder();
        while (true)
        {
            using var silence = CancellationTokenSource.CreateLinkedTokenSource(ct);
            silence.CancelAfter(Silence);
            string? line;
            try { line = await r.ReadLineAsync(silence.Token); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"no data from the server for {Silence.TotalSeconds:0} s");
            }
            if (line is null) return null;
            if (line.Length == 0)
            {
                if (data.Length == 0) { kind = null; continue; }
                if (id is not null) LastEventId = id;
                var e = new RunEvent(kind ?? "message", id, JsonNode.Parse(data.ToString())!);
                // The server marks the status it ends with (a final state earlier in the history, before a retry, is not it).
                if (e.Kind == "status" && e.Data["final"]?.GetValue<bool>() == true) ended = true;
                return e;
            }
            if (line.StartsWith(':')) continue;
            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "event": kind = value; break;
                case "id": id = value; break;
                case "data": if (data.Length > 0) data.Append('\n'); data.Append(value); break;
            }
        }
    }

    void Close()
    {
        reader?.Dispose();
        response?.Dispose();
        (reader, response) = (null, null);
    }

    public void Dispose() => Close();
}
