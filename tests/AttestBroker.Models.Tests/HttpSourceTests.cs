using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

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

[TestFixture]
public sealed class Models_stream_from_an_HTTP_base_URL
{
    [Test]
    public void A_model_served_over_HTTP_decrypts_to_the_same_bytes()
    {
        using var model = new TestModel();
        var data = model.AddFile("w/shard.bin", (2 * TestModel.Segment) + 17);
        var config = model.AddFile("config.json", 50);
        model.Encrypt();
        using var server = new LocalFileServer(model.Encrypted);
        using var http = new HttpClient();
        var options = new ModelDecryptionOptions { PublisherKey = model.Publisher };
        ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, options).GetAwaiter().GetResult();
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "w", "shard.bin")), Is.EqualTo(data));
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "config.json")), Is.EqualTo(config));
        });
    }

    [Test]
    public void A_stream_cut_mid_segment_is_resumed_with_a_range_request_from_the_start_of_that_segment()
    {
        using var model = new TestModel();
        var data = model.AddFile("w.bin", (3 * TestModel.Segment) + 5);
        model.Encrypt();
        var cutAt = Tamper.SegmentOffset(1) + 12345;
        using var server = new LocalFileServer(model.Encrypted, "w.bin.menc", cutAt, cuts: 1);
        using var http = new HttpClient();
        ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher }).GetAwaiter().GetResult();
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "w.bin")), Is.EqualTo(data));
            Assert.That(server.Requests, Does.Contain($"w.bin.menc bytes={Tamper.SegmentOffset(1)}-"));
        });
    }

    [Test]
    public void A_server_that_ignores_range_after_a_cut_is_rejected_with_source_unavailable_and_nothing_is_left()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (3 * TestModel.Segment) + 5);
        model.Encrypt();
        using var server = new LocalFileServer(model.Encrypted, "w.bin.menc", Tamper.SegmentOffset(2) + 10, cuts: 1, honourRange: false);
        using var http = new HttpClient();
        var ex = Assert.ThrowsAsync<ModelException>(() => ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher }))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SourceUnavailable));
        model.AssertNothingAtDestination();
    }

    [Test]
    public void A_stream_cut_more_often_than_allowed_is_rejected_with_source_unavailable_and_nothing_is_left()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (2 * TestModel.Segment) + 5);
        model.Encrypt();
        using var server = new LocalFileServer(model.Encrypted, "w.bin.menc", Tamper.SegmentOffset(1) + 10, cuts: 100);
        using var http = new HttpClient();
        var ex = Assert.ThrowsAsync<ModelException>(() => ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri, maxResumes: 2), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher }))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SourceUnavailable));
        model.AssertNothingAtDestination();
    }
}
