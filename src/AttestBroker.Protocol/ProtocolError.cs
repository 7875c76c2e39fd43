namespace AttestBroker.Protocol;

/// <summary>Why a JWK, JWE, token or binding was refused. Stable names: tests and callers match on them.</summary>
public enum ProtocolError
{
    /// <summary>The JWK is not a JSON object of the expected shape: a member is missing, of the wrong JSON type, or not strict base64url.</summary>
    JwkMalformed,

    /// <summary>"kty" is neither "EC" nor "RSA".</summary>
    JwkUnsupportedKeyType,

    /// <summary>"crv" is neither "P-256" nor "P-384".</summary>
    JwkUnsupportedCurve,

    /// <summary>An EC coordinate is not exactly the curve's field size (32 bytes for P-256, 48 for P-384).</summary>
    JwkCoordinateLengthInvalid,

    /// <summary>The EC point (x, y) does not satisfy the curve equation, or a coordinate is not below the field prime.</summary>
    JwkPointNotOnCurve,

    /// <summary>The RSA modulus is shorter than 3072 bits.</summary>
    JwkRsaModulusTooShort,

    /// <summary>The RSA modulus is longer than 8192 bits, or is not a minimal odd positive integer.</summary>
    JwkRsaModulusInvalid,

    /// <summary>The RSA public exponent is not an odd integer in 3 .. 2^32-1 with a minimal encoding.</summary>
    JwkRsaExponentInvalid,

    /// <summary>A public JWK carries private members (d, p, q, dp, dq, qi, oth, k).</summary>
    JwkContainsPrivateMembers,

    /// <summary>The JWK's "alg" or "use" names a different purpose from the one it is used for.</summary>
    JwkPurposeMismatch,

    /// <summary>The nonce is not exactly 32 bytes.</summary>
    NonceLengthInvalid,

    /// <summary>The REPORT_DATA is not exactly 64 bytes.</summary>
    ReportDataLengthInvalid,

    /// <summary>The plaintext key to encrypt is empty or longer than the limit.</summary>
    PlaintextLengthInvalid,

    /// <summary>The key to wrap, the wrapped key or the key-encryption key has a length RFC 3394 does not allow.</summary>
    KeyWrapLengthInvalid,

    /// <summary>RFC 3394 unwrap: the integrity check value did not come out as A6A6A6A6A6A6A6A6.</summary>
    KeyUnwrapFailed,

    /// <summary>The compact JWE is not five base64url segments, too long, or its protected header is not a JSON object of the expected shape.</summary>
    JweMalformed,

    /// <summary>"alg" is not the one algorithm allowed for the recipient key (ECDH-ES+A256KW for EC, RSA-OAEP-256 for RSA).</summary>
    JweAlgorithmUnsupported,

    /// <summary>"enc" is not A256GCM.</summary>
    JweEncryptionUnsupported,

    /// <summary>The header carries "zip": compression is refused.</summary>
    JweCompressionNotAllowed,

    /// <summary>The header carries "crit": no extension is understood, so any critical one is refused.</summary>
    JweCriticalHeaderUnsupported,

    /// <summary>"epk" is missing, not a valid public EC JWK, not on its curve, or on a different curve from the recipient key.</summary>
    JweEphemeralKeyInvalid,

    /// <summary>The encrypted key is not 40 bytes (ECDH-ES+A256KW) or not the modulus length (RSA-OAEP-256).</summary>
    JweEncryptedKeyLengthInvalid,

    /// <summary>The IV is not 12 bytes.</summary>
    JweIvLengthInvalid,

    /// <summary>The authentication tag is not 16 bytes.</summary>
    JweTagLengthInvalid,

    /// <summary>The content key could not be recovered or the GCM tag did not verify: wrong recipient key, or the JWE was changed.</summary>
    JweDecryptionFailed,

    /// <summary>The recipient private key is not EC P-256/P-384 or RSA of at least 3072 bits.</summary>
    RecipientKeyUnsupported,

    /// <summary>The token is not three base64url segments, too long, or a header/payload member is missing or of the wrong JSON type.</summary>
    TokenMalformed,

    /// <summary>The token header "alg" is not ES256.</summary>
    TokenAlgorithmNotAllowed,

    /// <summary>The token header "typ" is not the attestation-result type.</summary>
    TokenTypeInvalid,

    /// <summary>The token header "kid" is missing or names no key in the JWKS.</summary>
    TokenKeyUnknown,

    /// <summary>The ES256 signature does not verify under the key named by "kid".</summary>
    TokenSignatureInvalid,

    /// <summary>"exp" has passed (beyond the allowed clock skew).</summary>
    TokenExpired,

    /// <summary>"nbf" is still in the future (beyond the allowed clock skew).</summary>
    TokenNotYetValid,

    /// <summary>"iss" differs from the expected issuer.</summary>
    TokenIssuerMismatch,

    /// <summary>"cnf.jkt" differs from the RFC 7638 thumbprint of the key the client presented.</summary>
    TokenConfirmationMismatch,

    /// <summary>The signing key is not ECDSA P-256, or the token parameters (issuer, lifetime, claims) are out of bounds.</summary>
    TokenParametersInvalid,

    /// <summary>The JWKS is not {"keys":[...]} of valid public keys, a kid is missing, repeated or differs from the key's thumbprint.</summary>
    JwksMalformed,
}
