using System.Net;
using System.Net.Sockets;

namespace HcService.Service.Tests;

/// <summary>
/// A TCP relay in front of the API that can cut every open connection at once: what a client sees when a load balancer
/// drops it, an API instance restarts or the network blips. New connections go through again.
/// </summary>
public sealed class DroppingProxy : IDisposable
{
    readonly TcpListener listener = new(IPAddress.Loopback, 0);
    readonly Uri target;
    readonly List<TcpClient> open = [];
    readonly CancellationTokenSource stop = new();

    public DroppingProxy(string targetUrl)
    {
        target = new Uri(targetUrl);
        listener.Start();
        _ = Accept();
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
    public int Connections { get; private set; }

    async Task Accept()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await listener.AcceptTcpClientAsync(stop.Token); }
            catch (Exception) { return; }
            var upstream = new TcpClient();
            try { await upstream.ConnectAsync(target.Host, target.Port, stop.Token); }
            catch (Exception) { client.Dispose(); upstream.Dispose(); continue; }
            lock (open) { open.Add(client); open.Add(upstream); Connections++; }
            _ = Pump(client, upstream);
            _ = Pump(upstream, client);
        }
    }

    static async Task Pump(TcpClient from, TcpClient to)
    {
        try { await from.GetStream().CopyToAsync(to.GetStream()); }
        catch (Exception) { /* dropped */ }
        from.Dispose();
        to.Dispose();
    }

    /// <summary>Cuts every connection open now (a reset, not a clean end of the response).</summary>
    public void DropAll()
    {
        lock (open)
        {
            foreach (var c in open)
            {
                try { c.Client.LingerState = new LingerOption(true, 0); } catch (Exception) { }
                c.Dispose();
            }
            open.Clear();
        }
    }

    public void Dispose()
    {
        stop.Cancel();
        listener.Stop();
        DropAll();
    }
}
