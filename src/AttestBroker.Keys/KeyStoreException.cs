namespace AttestBroker.Keys;

/// <summary>Why a keystore operation failed. Stable codes; messages never carry key bytes.</summary>
public enum KeyError
{
    NotFound,
    Disabled,
    AlreadyExists,
    InvalidKeyId,
    InvalidKeyMaterial,
    /// <summary>No key-encryption key could be loaded (missing file, unreadable file, bad environment value).</summary>
    KekUnavailable,
    /// <summary>The KEK file is readable or writable by group or others.</summary>
    KekFilePermissions,
    /// <summary>The KEK file or value is malformed (not exactly 32 bytes, a symlink, ...).</summary>
    KekInvalid,
    /// <summary>The key was wrapped under a different KEK than the one loaded.</summary>
    WrongKek,
    /// <summary>Authenticated decryption of the wrapped key failed (altered, truncated or moved to another key id).</summary>
    UnwrapFailed,
    /// <summary>This KEK source cannot create a new version itself.</summary>
    RotationUnsupported,
    /// <summary>The storage below the keystore failed.</summary>
    StorageFailed,
}

public sealed class KeyStoreException : Exception
{
    public KeyStoreException(KeyError error, string message, Exception? inner = null)
        : base(message, inner)
    {
        Error = error;
    }

    public KeyStoreException()
        : this(KeyError.StorageFailed, "keystore operation failed")
    {
    }

    public KeyStoreException(string message)
        : this(KeyError.StorageFailed, message)
    {
    }

    public KeyStoreException(string message, Exception innerException)
        : this(KeyError.StorageFailed, message, innerException)
    {
    }

    public KeyError Error { get; }
}
