using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using AttestBroker.Evidence;

namespace AttestBroker.Agent.Providers;

/// <summary>
/// The virtual TEE of <c>attest-sim serve</c> (<c>--evidence sim:URL</c>): POST /sim/v1/evidence with the report data
/// returns simulated evidence in the hardware's exact format, signed by the simulator's PKI. A broker accepts it only
/// when its operator trusts that PKI and the key's policy sets allowSimulated.
/// </summary>
public sealed class SimulatorProvider : IEvidenceProvider, IDisposable
{
    /// <summary>Largest evidence accepted from the simulator.</summary>
    public const int MaximumEvidenceBytes = 64 * 1024;

    private readonly HttpClient _http;
    private readonly TeeKind _tee;
    private readonly string? _platform;

    /// <param name="baseAddress">The simulator's URL, e.g. http://127.0.0.1:8088/.</param>
    /// <param name="tee">The TEE kind to emulate.</param>
    /// <param name="platform">A platform (profile) name the simulator knows; null: "default".</param>
    /// <param name="handler">Replaces the HTTP stack (tests).</param>
    public SimulatorProvider(Uri baseAddress, TeeKind tee, string? platform = null, HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(baseAddress);
        if (!baseAddress.IsAbsoluteUri || (baseAddress.Scheme != Uri.UriSchemeHttp && baseAddress.Scheme != Uri.UriSchemeHttps))
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidRequest, $"simulator URL {baseAddress} is not an absolute http(s):// URL");
        }

        BaseAddress = baseAddress.AbsoluteUri.EndsWith('/') ? baseAddress : new Uri(baseAddress.AbsoluteUri + "/");
        _tee = tee;
        _platform = platform;
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = TimeSpan.FromSeconds(30);
    }

    public string Name => "sim";

    public Uri BaseAddress { get; }

    public Task<TeeKind> GetTeeKindAsync(CancellationToken cancellationToken) => Task.FromResult(_tee);

    public async Task<GuestEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData64, CancellationToken cancellationToken)
    {
        if (reportData64.Length != 64)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidRequest, $"report data must be 64 bytes, got {reportData64.Length}");
        }

        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("tee", _tee.ToWireName());
            if (_platform is not null)
            {
                w.WriteString("platform", _platform);
            }

            w.WriteString("report_data", Convert.ToHexStringLower(reportData64.Span));
            w.WriteEndObject();
        }

        using var content = new ByteArrayContent(stream.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var url = new Uri(BaseAddress, "sim/v1/evidence");
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsync(url, content, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new EvidenceProviderException(EvidenceProviderError.Busy, $"simulator at {BaseAddress} not reachable: {ex.Message}", ex);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EvidenceProviderException(EvidenceProviderError.Busy, $"simulator at {BaseAddress} did not answer in time", ex);
        }

        using (response)
        {
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                var text = Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 300))).Trim();
                var error = (int)response.StatusCode is 429 or >= 500 ? EvidenceProviderError.Busy : EvidenceProviderError.InvalidResponse;
                throw new EvidenceProviderException(error, $"simulator at {BaseAddress} answered HTTP {(int)response.StatusCode}: {text}");
            }

            if (body.Length == 0 || body.Length > MaximumEvidenceBytes)
            {
                throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"simulator evidence is {body.Length} bytes (expected 1 .. {MaximumEvidenceBytes})");
            }

            var detected = EvidenceDetector.Detect(body);
            if (detected != _tee)
            {
                throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"simulator returned {(detected is { } d ? d.ToWireName() : "unrecognised")} evidence for a {_tee.ToWireName()} request");
            }

            return new GuestEvidence(_tee, body, null, Name);
        }
    }

    public void Dispose() => _http.Dispose();
}
