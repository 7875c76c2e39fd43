namespace AttestBroker.Models;

/// <summary>Why an encrypted model, a manifest or a destination was refused. Stable names: tests and callers match on them.</summary>
public enum ModelError
{
    /// <summary>The file is shorter than the fixed part of the header, or a header field is out of its structural bounds.</summary>
    HeaderMalformed,

    /// <summary>The first four bytes are not "MENC".</summary>
    BadMagic,

    /// <summary>The format version is not one this build reads.</summary>
    UnsupportedVersion,

    /// <summary>The cipher suite byte is not 1 (AES-256-GCM with HKDF-SHA-256).</summary>
    UnsupportedSuite,

    /// <summary>Reserved flag bits are set.</summary>
    ReservedFlagsSet,

    /// <summary>The segment size is outside 1 MiB .. 4 MiB (or differs from the manifest's).</summary>
    SegmentSizeOutOfRange,

    /// <summary>A key id is empty, too long or has characters outside the allowed set.</summary>
    KeyIdInvalid,

    /// <summary>The header MAC does not verify: the header was changed or the model key is wrong.</summary>
    HeaderAuthenticationFailed,

    /// <summary>The header (or manifest) names a different key id from the one expected.</summary>
    KeyIdMismatch,

    /// <summary>The plaintext size in the header differs from the manifest's.</summary>
    PlaintextSizeMismatch,

    /// <summary>The ciphertext is not exactly as long as its header says: truncated or extended.</summary>
    CiphertextLengthMismatch,

    /// <summary>A segment's GCM tag does not verify: segment changed, reordered, duplicated, swapped in from another file, or truncated.</summary>
    SegmentAuthenticationFailed,

    /// <summary>A segment index past the last segment was asked for.</summary>
    SegmentIndexOutOfRange,

    /// <summary>The root of a ciphertext file's digest tree (<see cref="CiphertextDigestTree"/>) differs from the manifest's.</summary>
    CiphertextDigestMismatch,

    /// <summary>The manifest is not valid JSON of the expected shape.</summary>
    ManifestMalformed,

    /// <summary>A manifest path is absolute, contains "..", ".", an empty or a control character, or repeats another.</summary>
    ManifestPathInvalid,

    /// <summary>A publisher key was configured but the encrypted model has no manifest signature.</summary>
    ManifestSignatureMissing,

    /// <summary>The manifest signature does not verify under the configured publisher key.</summary>
    ManifestSignatureInvalid,

    /// <summary>A publisher public key or signing key could not be read, or is not ECDSA P-256.</summary>
    PublisherKeyInvalid,

    /// <summary>The model key is not 32 bytes (raw, or base64 of 32 bytes).</summary>
    ModelKeyInvalid,

    /// <summary>The destination is not on tmpfs or ramfs and disk was not allowed.</summary>
    DestinationNotMemoryBacked,

    /// <summary>A destination file already exists, or a destination path component is a symbolic link.</summary>
    DestinationUnsafe,

    /// <summary>The destination volume has less free space than the model's plaintext.</summary>
    DestinationTooSmall,

    /// <summary>The source is unreachable or a file is missing from it.</summary>
    SourceUnavailable,

    /// <summary>The plaintext source changed or could not be read while encrypting.</summary>
    SourceInvalid,
}

/// <summary>A refused model operation: a reason code and a message naming the file, segment or field. Never carries key material.</summary>
public sealed class ModelException : Exception
{
    public ModelException(ModelError reason, string message)
        : base(message)
    {
        Reason = reason;
    }

    public ModelException(ModelError reason, string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = reason;
    }

    public ModelException()
    {
    }

    public ModelException(string message)
        : base(message)
    {
    }

    public ModelException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The reason code.</summary>
    public ModelError Reason { get; }

    /// <summary>True when the input was read but did not authenticate or verify (exit code 1); false for usage, I/O and destination problems (exit code 2).</summary>
    public bool IsVerificationFailure => Reason switch
    {
        ModelError.DestinationNotMemoryBacked or ModelError.DestinationUnsafe or ModelError.DestinationTooSmall or ModelError.SourceUnavailable
            or ModelError.SourceInvalid or ModelError.ModelKeyInvalid or ModelError.PublisherKeyInvalid => false,
        _ => true,
    };
}
