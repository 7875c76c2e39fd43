using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace AttestBroker.Testing;

/// <summary>Serves a directory on 127.0.0.1; can cut the first response of one file mid-stream, and can ignore Range.</summary>
internal sealed class LocalFileServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly string _root;
    private readonly Task _loop;
    private int _cutsLeft;

    public LocalFileServer(string root, string? cutPath = null, long cutAfter = 0, int cuts = 0, bool honourRange = true)
    {
        _root = root;
        CutPath = cutPath;
        CutAfter = cutAfter;
        _cutsLeft = cuts;
        HonourRange = honourRange;
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        BaseUri = new Uri($"http://127.0.0.1:{port}/model/");
        _listener.Prefixes.Add(BaseUri.AbsoluteUri);
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public Uri BaseUri { get; }

    public string? CutPath { get; }

    public long CutAfter { get; }

    public bool HonourRange { get; }

    public ConcurrentQueue<string> Requests { get; } = new();

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
        }
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(context));
        }
    }

    private async Task ServeAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            var relative = Uri.UnescapeDataString(context.Request.Url!.AbsolutePath["/model/".Length..]);
            var range = context.Request.Headers["Range"];
            Requests.Enqueue(relative + (range is null ? string.Empty : " " + range));
            var path = Path.Combine(_root, relative);
            if (!File.Exists(path))
            {
                response.StatusCode = 404;
                response.Close();
                return;
            }

            var bytes = await File.ReadAllBytesAsync(path).ConfigureAwait(false);
            long from = 0;
            if (range is not null && HonourRange)
            {
                from = long.Parse(range["bytes=".Length..].TrimEnd('-'), CultureInfo.InvariantCulture);
                response.StatusCode = 206;
                response.Headers["Content-Range"] = $"bytes {from}-{bytes.Length - 1}/{bytes.Length}";
            }

            response.ContentLength64 = bytes.Length - from;
            var body = bytes.AsMemory((int)from);
            if (relative == CutPath && Interlocked.Decrement(ref _cutsLeft) >= 0)
            {
                await response.OutputStream.WriteAsync(body[..(int)(CutAfter - from)]).ConfigureAwait(false);
                await response.OutputStream.FlushAsync().ConfigureAwait(false);
                response.Abort();
                return;
            }

            await response.OutputStream.WriteAsync(body).ConfigureAwait(false);
            response.Close();
        }
        catch (Exception ex) when (ex is HttpListenerException or IOException or ObjectDisposedException)
        {
            response.Abort();
        }
    }
}
