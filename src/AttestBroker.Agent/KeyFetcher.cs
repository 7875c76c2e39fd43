using System.Security.Cryptography;
using AttestBroker.Agent.Broker;
using AttestBroker.Agent.Providers;
using AttestBroker.Evidence;
using AttestBroker.Protocol;

namespace AttestBroker.Agent;

/// <summary>The ephemeral key pair the pod makes for one fetch (protocol.md §1); it lives in memory only.</summary>
public enum EphemeralKeyAlgorithm
{
    /// <summary>EC P-256 (ECDH-ES+A256KW). The default.</summary>
    EcP256,

    /// <summary>EC P-384 (ECDH-ES+A256KW).</summary>
    EcP384,

    /// <summary>RSA 3072 (RSA-OAEP-256).</summary>
    Rsa3072,
}

/// <summary>What to fetch.</summary>
public sealed class KeyFetchRequest
{
    /// <summary>Most key ids in one request (the broker's default Broker:MaxKeysPerRequest).</summary>
    public const int MaximumKeyIds = 16;

    /// <summary>1 .. 16 distinct key ids; all are released or none.</summary>
    public required IReadOnlyList<string> KeyIds { get; init; }

    public EphemeralKeyAlgorithm KeyAlgorithm { get; init; } = EphemeralKeyAlgorithm.EcP256;

    /// <summary>The pod's Kubernetes service account token (sent as service_account_token), or null.</summary>
    public string? ServiceAccountToken { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> unless there are 1 .. 16 distinct, non-empty key ids.</summary>
    public void Validate()
    {
        if (KeyIds is null || KeyIds.Count == 0)
        {
            throw new ArgumentException("at least one key id is required");
        }

        if (KeyIds.Count > MaximumKeyIds)
        {
            throw new ArgumentException($"at most {MaximumKeyIds} key ids in one request, got {KeyIds.Count}");
        }

        if (KeyIds.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("a key id is empty");
        }

        if (KeyIds.Distinct(StringComparer.Ordinal).Count() != KeyIds.Count)
        {
            throw new ArgumentException("a key id is repeated");
        }
    }
}

/// <summary>
/// Released keys, in memory. Every key buffer is zeroed on <see cref="Dispose"/>; use the keys before that and never
/// copy them to a log. The result token is kept for information: it is bound to the fetch's ephemeral key, whose
/// private half is gone once <see cref="KeyFetcher.FetchAsync"/> returns, so further keys cannot be unwrapped with it.
/// </summary>
public sealed class FetchedKeys : IDisposable
{
    private readonly Dictionary<string, byte[]> _keys;
    private bool _disposed;

    internal FetchedKeys(Dictionary<string, byte[]> keys, IReadOnlyList<string> order, string? token, DateTimeOffset? tokenExpiresAt, TeeKind tee, bool simulated, string provider)
    {
        _keys = keys;
        KeyIds = order;
        Token = token;
        TokenExpiresAt = tokenExpiresAt;
        Tee = tee;
        Simulated = simulated;
        Provider = provider;
    }

    /// <summary>The key ids, in the order requested.</summary>
    public IReadOnlyList<string> KeyIds { get; }

    /// <summary>The attestation-result token (protocol.md §5) for POST /v1/keys with the same ephemeral key; null when the broker gave none.</summary>
    public string? Token { get; }

    public DateTimeOffset? TokenExpiresAt { get; }

    /// <summary>The TEE kind whose evidence was accepted.</summary>
    public TeeKind Tee { get; }

    /// <summary>True when the broker says the evidence chained to a simulator root.</summary>
    public bool Simulated { get; }

    /// <summary>The evidence provider that was used.</summary>
    public string Provider { get; }

    /// <summary>The key released under <paramref name="keyId"/>. Valid until <see cref="Dispose"/>, which zeroes it.</summary>
    public ReadOnlyMemory<byte> GetKey(string keyId)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(keyId);
        return _keys.TryGetValue(keyId, out var key) ? key : throw new KeyNotFoundException($"no key \"{keyId}\" was fetched");
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var key in _keys.Values)
        {
            CryptographicOperations.ZeroMemory(key);
        }

        _keys.Clear();
    }
}

/// <summary>
/// The pod's side of the round trip (protocol.md §1): an ephemeral key pair in memory, a challenge for the provider's
/// TEE kind, REPORT_DATA = SHA-512(nonce || thumbprint), evidence, attest, and each JWE decrypted with the ephemeral
/// key. A broker that is unavailable (connection error, timeout, 429, 503) or an evidence interface that is busy is
/// retried from a fresh challenge with backoff; a denial is not retried.
/// </summary>
public sealed class KeyFetcher
{
    private readonly BrokerClient _broker;
    private readonly IEvidenceProvider _evidence;

    public KeyFetcher(BrokerClient broker, IEvidenceProvider evidence)
    {
        _broker = broker ?? throw new ArgumentNullException(nameof(broker));
        _evidence = evidence ?? throw new ArgumentNullException(nameof(evidence));
    }

    /// <summary>Attests and fetches the requested keys.</summary>
    /// <exception cref="ArgumentException">The request is invalid (no key ids, repeated ids, more than 16).</exception>
    /// <exception cref="BrokerProblemException">The broker refused (policy-denied with the failing rules, unknown key, ...).</exception>
    /// <exception cref="BrokerUnavailableException">The broker (or the evidence interface) stayed unavailable through every retry.</exception>
    /// <exception cref="EvidenceProviderException">The evidence interface is missing or refused for good.</exception>
    /// <exception cref="BrokerResponseException">The broker's answer breaks the protocol (missing keys, undecryptable JWE, ...).</exception>
    public async Task<FetchedKeys> FetchAsync(KeyFetchRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        var tee = await _evidence.GetTeeKindAsync(cancellationToken).ConfigureAwait(false);
        using var key = EphemeralKey.Create(request.KeyAlgorithm);
        var release = await _broker.Retry.ExecuteAsync((_, ct) => RoundAsync(tee, key, request, ct), cancellationToken).ConfigureAwait(false);
        return Unwrap(release, key, request.KeyIds, tee);
    }

    private async Task<BrokerRelease> RoundAsync(TeeKind tee, EphemeralKey key, KeyFetchRequest request, CancellationToken ct)
    {
        var challenge = await _broker.ChallengeOnceAsync(tee, ct).ConfigureAwait(false);
        var reportData = ReportDataBinding.Compute(challenge.Nonce, key.PublicJwk);
        GuestEvidence evidence;
        try
        {
            evidence = await _evidence.GetEvidenceAsync(reportData, ct).ConfigureAwait(false);
        }
        catch (EvidenceProviderException ex) when (ex.IsTransient)
        {
            throw new BrokerTransientException($"evidence ({_evidence.Name}): {ex.Message}", null, ex);
        }

        if (evidence.Tee != tee)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{_evidence.Name} said {tee.ToWireName()} but produced {evidence.Tee.ToWireName()} evidence");
        }

        return await _broker.AttestOnceAsync(challenge.Challenge, evidence.Bytes, key.PublicJwk, request.KeyIds, request.ServiceAccountToken, ct).ConfigureAwait(false);
    }

    private FetchedKeys Unwrap(BrokerRelease release, EphemeralKey key, IReadOnlyList<string> wanted, TeeKind tee)
    {
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        try
        {
            foreach (var entry in release.Keys)
            {
                if (!wanted.Contains(entry.KeyId, StringComparer.Ordinal))
                {
                    throw new BrokerResponseException($"the broker released key \"{entry.KeyId}\", which was not requested");
                }

                if (keys.ContainsKey(entry.KeyId))
                {
                    throw new BrokerResponseException($"the broker released key \"{entry.KeyId}\" twice");
                }

                byte[] plaintext;
                string? kid;
                try
                {
                    plaintext = key.Decrypt(entry.Jwe, out kid);
                }
                catch (ProtocolException ex)
                {
                    throw new BrokerResponseException($"the JWE for key \"{entry.KeyId}\" does not decrypt with this pod's key: {ex.Error}", ex);
                }

                keys[entry.KeyId] = plaintext;
                if (kid is not null && !string.Equals(kid, entry.KeyId, StringComparison.Ordinal))
                {
                    throw new BrokerResponseException($"the JWE listed under key \"{entry.KeyId}\" carries kid \"{kid}\"");
                }
            }

            var missing = wanted.Where(id => !keys.ContainsKey(id)).ToList();
            if (missing.Count > 0)
            {
                throw new BrokerResponseException($"the broker answered 200 without key(s) {string.Join(", ", missing)}");
            }

            return new FetchedKeys(keys, [.. wanted], release.Token, release.TokenExpiresAt, tee, release.Simulated, _evidence.Name);
        }
        catch
        {
            foreach (var k in keys.Values)
            {
                CryptographicOperations.ZeroMemory(k);
            }

            throw;
        }
    }

    /// <summary>The ephemeral key pair: an ECDH or RSA object whose private half never leaves the process.</summary>
    private sealed class EphemeralKey : IDisposable
    {
        private readonly ECDiffieHellman? _ec;
        private readonly RSA? _rsa;

        private EphemeralKey(ECDiffieHellman? ec, RSA? rsa)
        {
            _ec = ec;
            _rsa = rsa;
            PublicJwk = ec is not null ? Jwk.FromPublicKey(ec) : Jwk.FromPublicKey(rsa!);
        }

        public Jwk PublicJwk { get; }

        public static EphemeralKey Create(EphemeralKeyAlgorithm algorithm) => algorithm switch
        {
            EphemeralKeyAlgorithm.EcP256 => new EphemeralKey(EcdhAgreement.CreateKey(ECCurve.NamedCurves.nistP256), null),
            EphemeralKeyAlgorithm.EcP384 => new EphemeralKey(EcdhAgreement.CreateKey(ECCurve.NamedCurves.nistP384), null),
            EphemeralKeyAlgorithm.Rsa3072 => new EphemeralKey(null, RSA.Create(3072)),
            _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
        };

        public byte[] Decrypt(string jwe, out string? kid) =>
            _ec is not null ? JweDecryptor.Decrypt(jwe, _ec, out kid) : JweDecryptor.Decrypt(jwe, _rsa!, out kid);

        public void Dispose()
        {
            _ec?.Dispose();
            _rsa?.Dispose();
        }
    }
}
