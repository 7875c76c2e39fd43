namespace AttestBroker.Protocol;

/// <summary>The only JOSE algorithm names this protocol speaks.</summary>
public static class JoseAlgorithms
{
    /// <summary>JWE key management for EC recipient keys (RFC 7518 §4.6).</summary>
    public const string EcdhEsA256Kw = "ECDH-ES+A256KW";

    /// <summary>JWE key management for RSA recipient keys (RFC 7518 §4.3): OAEP with SHA-256 and MGF1-SHA-256.</summary>
    public const string RsaOaep256 = "RSA-OAEP-256";

    /// <summary>JWE content encryption (RFC 7518 §5.3).</summary>
    public const string A256Gcm = "A256GCM";

    /// <summary>JWS signature for the attestation-result token (RFC 7518 §3.4).</summary>
    public const string Es256 = "ES256";
}
