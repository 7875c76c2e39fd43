using System.Net;
using System.Net.Http.Headers;
using Microsoft.Win32.SafeHandles;

namespace AttestBroker.Models;

/// <summary>Where an encrypted model is read from: a local directory or an HTTP(S) base URL. Paths are manifest-relative and already validated.</summary>
public interface IModelSource
{
    /// <summary>For messages.</summary>
    string Description { get; }

    /// <summary>Reads a small file whole (manifest, signature); null when it does not exist.</summary>
    Task<byte[]?> ReadSmallFileAsync(string relativePath, int maxLength, CancellationToken cancellationToken);

    /// <summary>
    /// Opens a ciphertext file that must be exactly <paramref name="expectedLength"/> bytes long
    /// (else <see cref="ModelError.CiphertextLengthMismatch"/>); missing gives <see cref="ModelError.SourceUnavailable"/>.
    /// </summary>
    Task<ICiphertextReader> OpenCiphertextAsync(string relativePath, long expectedLength, CancellationToken cancellationToken);
}

/// <summary>Reads one ciphertext file front to back; each read continues where the previous ended.</summary>
public interface ICiphertextReader : IAsyncDisposable
{
    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="offset"/> (the end of the previous read).</summary>
    ValueTask ReadExactlyAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken);
}

/// <summary>A reader that can also read any range from any thread (a local file): workers then read their own segments in parallel.</summary>
public interface IPositionalCiphertextReader : ICiphertextReader
{
    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="offset"/>; safe to call concurrently.</summary>
    void ReadExactlyAt(long offset, Span<byte> destination);
}

/// <summary>A local directory, read in place with positional reads (nothing is copied to another file).</summary>
public sealed class DirectoryModelSource : IModelSource
{
    private readonly string _root;

    public DirectoryModelSource(string root)
    {
        ArgumentNullException.ThrowIfNull(root);
        _root = Path.GetFullPath(root);
        if (!Directory.Exists(_root))
        {
            throw new ModelException(ModelError.SourceUnavailable, $"encrypted model directory {root} does not exist");
        }
    }

    public string Description => _root;

    public async Task<byte[]?> ReadSmallFileAsync(string relativePath, int maxLength, CancellationToken cancellationToken)
    {
        var path = Resolve(relativePath);
        if (!File.Exists(path))
        {
            return null;
        }

        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var length = RandomAccess.GetLength(handle);
        if (length > maxLength)
        {
            throw new ModelException(ModelError.ManifestMalformed, $"{relativePath} is larger than {maxLength} bytes");
        }

        var content = new byte[length];
        var total = 0;
        while (total < content.Length)
        {
            var read = await RandomAccess.ReadAsync(handle, content.AsMemory(total), total, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new ModelException(ModelError.SourceUnavailable, $"{relativePath} shrank while being read");
            }

            total += read;
        }

        return content;
    }

    public Task<ICiphertextReader> OpenCiphertextAsync(string relativePath, long expectedLength, CancellationToken cancellationToken)
    {
        var path = Resolve(relativePath);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelException(ModelError.SourceUnavailable, $"ciphertext {relativePath} is missing from {_root}", ex);
        }

        var length = RandomAccess.GetLength(handle);
        if (length != expectedLength)
        {
            handle.Dispose();
            throw new ModelException(ModelError.CiphertextLengthMismatch, $"ciphertext {relativePath} is {length} bytes, its header and manifest say {expectedLength}: truncated or extended");
        }

        return Task.FromResult<ICiphertextReader>(new Reader(handle, relativePath));
    }

    private string Resolve(string relativePath)
    {
        var full = Path.GetFullPath(Path.Combine(_root, relativePath));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ModelException(ModelError.ManifestPathInvalid, $"path {relativePath} leaves the source directory");
        }

        return full;
    }

    private sealed class Reader(SafeFileHandle handle, string name) : IPositionalCiphertextReader
    {
        public ValueTask ReadExactlyAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
        {
            ReadExactlyAt(offset, destination.Span);
            return ValueTask.CompletedTask;
        }

        public void ReadExactlyAt(long offset, Span<byte> span)
        {
            var total = 0;
            while (total < span.Length)
            {
                var read = RandomAccess.Read(handle, span[total..], offset + total);
                if (read == 0)
                {
                    throw new ModelException(ModelError.CiphertextLengthMismatch, $"ciphertext {name} ended early (changed while being read?)");
                }

                total += read;
            }
        }

        public ValueTask DisposeAsync()
        {
            handle.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>
/// An HTTP(S) base URL: files are fetched at base + manifest-relative path and streamed straight into the pipeline
/// (ciphertext never touches local disk). An interrupted body is resumed with a Range request from the segment being read.
/// </summary>
public sealed class HttpModelSource : IModelSource
{
    private readonly HttpClient _client;
    private readonly Uri _base;
    private readonly int _maxResumes;

    public HttpModelSource(HttpClient client, Uri baseUri, int maxResumes = 5)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(baseUri);
        if (!baseUri.IsAbsoluteUri || (baseUri.Scheme != Uri.UriSchemeHttps && baseUri.Scheme != Uri.UriSchemeHttp))
        {
            throw new ModelException(ModelError.SourceUnavailable, "model source URL must be an absolute http(s) URL");
        }

        _client = client;
        _base = baseUri.AbsoluteUri.EndsWith('/') ? baseUri : new Uri(baseUri.AbsoluteUri + "/");
        _maxResumes = maxResumes;
    }

    public string Description => _base.GetLeftPart(UriPartial.Path);

    public async Task<byte[]?> ReadSmallFileAsync(string relativePath, int maxLength, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(relativePath, null, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        EnsureOk(response, relativePath);
        if (response.Content.Headers.ContentLength > maxLength)
        {
            throw new ModelException(ModelError.ManifestMalformed, $"{relativePath} is larger than {maxLength} bytes");
        }

        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > maxLength)
                {
                    throw new ModelException(ModelError.ManifestMalformed, $"{relativePath} is larger than {maxLength} bytes");
                }

                buffer.Write(chunk, 0, read);
            }

            return buffer.ToArray();
        }
    }

    public async Task<ICiphertextReader> OpenCiphertextAsync(string relativePath, long expectedLength, CancellationToken cancellationToken)
    {
        var reader = new Reader(this, relativePath, expectedLength);
        await reader.StartAsync(0, cancellationToken).ConfigureAwait(false);
        return reader;
    }

    private async Task<HttpResponseMessage> SendAsync(string relativePath, long? from, CancellationToken cancellationToken)
    {
        var uri = new Uri(_base, string.Join('/', relativePath.Split('/').Select(Uri.EscapeDataString)));
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (from is not null)
        {
            request.Headers.Range = new RangeHeaderValue(from, null);
        }

        try
        {
            return await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new ModelException(ModelError.SourceUnavailable, $"cannot fetch {relativePath} from {Description}: {ex.Message}", ex);
        }
    }

    private static void EnsureOk(HttpResponseMessage response, string relativePath)
    {
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new ModelException(ModelError.SourceUnavailable, $"{relativePath} not found (HTTP 404)");
        }

        if (!response.IsSuccessStatusCode)
        {
            throw new ModelException(ModelError.SourceUnavailable, $"fetching {relativePath} answered HTTP {(int)response.StatusCode}");
        }
    }

    private sealed class Reader(HttpModelSource source, string name, long expectedLength) : ICiphertextReader
    {
        private HttpResponseMessage? _response;
        private Stream? _body;
        private long _position;
        private int _resumes;

        public async Task StartAsync(long from, CancellationToken cancellationToken)
        {
            await CloseAsync().ConfigureAwait(false);
            var response = await source.SendAsync(name, from == 0 ? null : from, cancellationToken).ConfigureAwait(false);
            try
            {
                EnsureOk(response, name);
                if (from == 0)
                {
                    if (response.StatusCode != HttpStatusCode.OK || (response.Content.Headers.ContentLength is { } length && length != expectedLength))
                    {
                        throw new ModelException(ModelError.CiphertextLengthMismatch, $"ciphertext {name} is {response.Content.Headers.ContentLength} bytes, its manifest says {expectedLength}: truncated or extended");
                    }
                }
                else
                {
                    var range = response.Content.Headers.ContentRange;
                    if (response.StatusCode != HttpStatusCode.PartialContent || range is null || range.From != from || (range.Length is { } total && total != expectedLength))
                    {
                        throw new ModelException(ModelError.SourceUnavailable, $"server did not resume {name} at byte {from} (no usable 206 Partial Content)");
                    }
                }

                _body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                _response = response;
                _position = from;
            }
            catch
            {
                response.Dispose();
                throw;
            }
        }

        public async ValueTask ReadExactlyAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
        {
            if (offset != _position && _body is not null)
            {
                throw new InvalidOperationException("HTTP ciphertext reads must be sequential");
            }

            var total = 0;
            while (total < destination.Length)
            {
                int read;
                try
                {
                    read = await _body!.ReadAsync(destination[total..], cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException && !cancellationToken.IsCancellationRequested)
                {
                    read = -1;
                }

                if (read > 0)
                {
                    total += read;
                    continue;
                }

                if (read == 0 && offset + total >= expectedLength)
                {
                    throw new ModelException(ModelError.CiphertextLengthMismatch, $"ciphertext {name} ended early");
                }

                // Cut mid-stream: start again at the beginning of the segment being read; the bytes of earlier segments are already in the pipeline.
                if (++_resumes > source._maxResumes)
                {
                    throw new ModelException(ModelError.SourceUnavailable, $"download of {name} was interrupted more than {source._maxResumes} times");
                }

                await StartAsync(offset, cancellationToken).ConfigureAwait(false);
                total = 0;
            }

            _position = offset + destination.Length;
            if (_position == expectedLength)
            {
                // The body must end exactly here: anything after the last segment is an extension.
                var probe = new byte[1];
                if (await _body!.ReadAsync(probe, cancellationToken).ConfigureAwait(false) != 0)
                {
                    throw new ModelException(ModelError.CiphertextLengthMismatch, $"ciphertext {name} continues past its declared length");
                }
            }
        }

        public ValueTask DisposeAsync() => new(CloseAsync());

        private async Task CloseAsync()
        {
            if (_body is not null)
            {
                await _body.DisposeAsync().ConfigureAwait(false);
                _body = null;
            }

            _response?.Dispose();
            _response = null;
        }
    }
}
