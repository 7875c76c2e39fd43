using System.Buffers.Text;
using System.Net;
using System.Text;
using System.Text.Json;
using AttestBroker.Agent.Providers;
using AttestBroker.Evidence;
using AttestBroker.Protocol;

namespace AttestBroker.Agent.Tests;

/// <summary>An HTTP handler that answers from a script: each request is recorded and handed to a function.</summary>
internal sealed class ScriptedHandler : HttpMessageHandler
{
    private readonly Func<HttpRequestMessage, string, int, HttpResponseMessage> _answer;

    public ScriptedHandler(Func<HttpRequestMessage, string, int, HttpResponseMessage> answer) => _answer = answer;

    /// <summary>(path, body) of every request, in order.</summary>
    public List<(string Path, string Body)> Requests { get; } = [];

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? string.Empty : await request.Content.ReadAsStringAsync(cancellationToken);
        int count;
        lock (Requests)
        {
            Requests.Add((request.RequestUri!.AbsolutePath, body));
            count = Requests.Count;
        }

        return _answer(request, body, count);
    }

    public static HttpResponseMessage Json(HttpStatusCode status, string json, string mediaType = "application/json")
    {
        var response = new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, mediaType) };
        return response;
    }

    public static HttpResponseMessage Problem(int status, string code, string detail, string? extra = null) =>
        Json((HttpStatusCode)status, $"{{\"type\":\"urn:attestbroker:problem:{code}\",\"title\":\"{code}\",\"status\":{status},\"detail\":\"{detail}\",\"code\":\"{code}\"{extra}}}", "application/problem+json");
}

/// <summary>
/// The protocol's broker side in a few lines, for unit tests of the client: challenges with random nonces, and a
/// grant that encrypts a fixed key to the pod's JWK (after checking REPORT_DATA binds nonce and key). No verification.
/// </summary>
internal sealed class FakeBrokerLogic
{
    private readonly Dictionary<string, byte[]> _nonces = [];

    public Dictionary<string, byte[]> Keys { get; } = [];

    /// <summary>Changes the grant just before it is sent (to test the client's checks).</summary>
    public Func<List<(string KeyId, string Jwe)>, List<(string KeyId, string Jwe)>>? Tamper { get; set; }

    public HttpResponseMessage Challenge(string body)
    {
        using var doc = JsonDocument.Parse(body);
        var tee = doc.RootElement.GetProperty("tee").GetString()!;
        var nonce = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var challenge = "c-" + Convert.ToHexStringLower(nonce);
        _nonces[challenge] = nonce;
        return ScriptedHandler.Json(HttpStatusCode.OK, $"{{\"tee\":\"{tee}\",\"nonce\":\"{Base64Url.EncodeToString(nonce)}\",\"challenge\":\"{challenge}\",\"expires_at\":\"2030-01-01T00:00:00Z\"}}");
    }

    public HttpResponseMessage Attest(string body)
    {
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        var nonce = _nonces[root.GetProperty("challenge").GetString()!];
        var jwk = Jwk.FromJsonElement(root.GetProperty("public_key"));
        var evidence = Base64Url.DecodeFromChars(root.GetProperty("evidence").GetString()!);
        if (!ReportDataBinding.Matches(evidence.AsSpan(0, 64), nonce, jwk))
        {
            return ScriptedHandler.Problem(403, "report-data-binding-mismatch", "REPORT_DATA does not bind");
        }

        var grants = root.GetProperty("key_ids").EnumerateArray().Select(k => k.GetString()!)
            .Select(id => (id, JweEncryptor.Encrypt(Keys[id], jwk, id))).ToList();
        grants = Tamper?.Invoke(grants) ?? grants;
        var keys = string.Join(",", grants.Select(g => $"{{\"key_id\":\"{g.Item1}\",\"jwe\":\"{g.Item2}\"}}"));
        return ScriptedHandler.Json(HttpStatusCode.OK, $"{{\"keys\":[{keys}],\"token\":\"t.o.k\",\"token_expires_at\":\"2030-01-01T00:05:00Z\",\"tee\":\"tdx\",\"simulated\":true}}");
    }
}

/// <summary>Evidence whose first 64 bytes are the report data (enough for <see cref="FakeBrokerLogic"/>).</summary>
internal sealed class EchoEvidenceProvider : IEvidenceProvider
{
    public string Name => "echo";

    public int Calls { get; private set; }

    public Queue<EvidenceProviderException> Failures { get; } = new();

    public Task<TeeKind> GetTeeKindAsync(CancellationToken cancellationToken) => Task.FromResult(TeeKind.Tdx);

    public Task<GuestEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData64, CancellationToken cancellationToken)
    {
        Calls++;
        if (Failures.TryDequeue(out var failure))
        {
            throw failure;
        }

        return Task.FromResult(new GuestEvidence(TeeKind.Tdx, [.. reportData64.ToArray(), .. new byte[16]], null, Name));
    }
}
