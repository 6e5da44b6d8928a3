using System.Text;
using System.Text.Json.Nodes;

namespace HcService.Service.Tests;

/// <summary>One event of a run's stream as the wire carries it.</summary>
public sealed record Sse(string Kind, string Id, JsonNode Data)
{
    /// <summary>The stream position in the id <c>s{status}.m{metric}</c>.</summary>
    public (long S, long M) Position
    {
        get
        {
            var parts = Id.Split('.');
            return (long.Parse(parts[0][1..]), long.Parse(parts[1][1..]));
        }
    }

    public string Status => Data["status"]!.GetValue<string>();
    public (string Name, long Step) Point => (Data["name"]!.GetValue<string>(), Data["step"]!.GetValue<long>());
}

/// <summary>
/// A plain reader of GET /api/runs/{id}/events, as a browser's EventSource sees it (the SSE wire format, parsed here,
/// independently of the CLI's client), that a test can stop after any number of events.
/// </summary>
public static class SseReader
{
    /// <summary>Reads events until the server ends the stream or <paramref name="stopAfter"/> events were read (then the
    /// connection is dropped, as a client that goes away does). <paramref name="onEvent"/> sees each one as it arrives.</summary>
    public static async Task<List<Sse>> Read(HttpClient http, string path, string? lastEventId = null, int stopAfter = int.MaxValue,
        Action<Sse>? onEvent = null, TimeSpan? timeout = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode) Assert.Fail($"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<Sse>();
        string? kind = null, id = null;
        var data = new StringBuilder();
        var limit = timeout ?? TimeSpan.FromMinutes(3);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (events.Count < stopAfter)
        {
            var left = limit - clock.Elapsed;
            Assert.True(left > TimeSpan.Zero, $"{path}: the stream did not end within {limit} ({events.Count} events)");
            var line = await reader.ReadLineAsync().WaitAsync(left);
            if (line is null) break;
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    Assert.NotNull(id);   // every event carries an id
                    var e = new Sse(kind!, id!, JsonNode.Parse(data.ToString())!);
                    events.Add(e);
                    onEvent?.Invoke(e);
                }
                (kind, id) = (null, null);
                data.Clear();
                continue;
            }
            if (line.StartsWith(':')) continue;
            if (line.StartsWith("event: ", StringComparison.Ordinal)) kind = line[7..];
            else if (line.StartsWith("id: ", StringComparison.Ordinal)) id = line[4..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) data.Append(line[6..]);
        }
        return events;
    }

    /// <summary>Event ids strictly increase: no event is sent twice, none out of order.</summary>
    public static void AssertIdsIncrease(IReadOnlyList<Sse> events)
    {
        for (var i = 1; i < events.Count; i++)
        {
            var (a, b) = (events[i - 1].Position, events[i].Position);
            Assert.True(b.S >= a.S && b.M >= a.M && (b.S > a.S || b.M > a.M), $"event {i}: id {events[i].Id} after {events[i - 1].Id}");
        }
    }
}
