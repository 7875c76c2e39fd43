using AttestBroker.Evidence;

namespace AttestBroker.Agent.Providers;

/// <summary>
/// Obtains hardware evidence inside the guest: a TDX quote or an SEV-SNP attestation report whose REPORT_DATA is
/// the 64 bytes the caller gives.
/// </summary>
public interface IEvidenceProvider
{
    /// <summary>Short name for messages: "configfs-tsm", "tdx-ioctl", "sev-ioctl", "sim".</summary>
    string Name { get; }

    /// <summary>The kind of TEE this provider produces evidence for (needed before the challenge, which is per TEE kind).</summary>
    Task<TeeKind> GetTeeKindAsync(CancellationToken cancellationToken);

    /// <summary>Evidence binding exactly these 64 bytes of report data.</summary>
    /// <exception cref="EvidenceProviderException">The interface is missing, refused, busy or answered something unusable.</exception>
    Task<GuestEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData64, CancellationToken cancellationToken);
}

/// <summary>What a provider returns.</summary>
/// <param name="Tee">The TEE kind of <paramref name="Bytes"/>.</param>
/// <param name="Bytes">The raw TDX quote or SNP attestation report, as the broker expects it.</param>
/// <param name="Certificates">SNP only: the GHCB certificate table (configfs auxblob or SNP_GET_EXT_REPORT), when the host provides one; else null.</param>
/// <param name="Provider">The provider that made it.</param>
public sealed record GuestEvidence(TeeKind Tee, byte[] Bytes, byte[]? Certificates, string Provider);

/// <summary>Why a provider could not give evidence.</summary>
public enum EvidenceProviderError
{
    /// <summary>The interface does not exist here (no configfs-tsm, no device node, simulator not reachable).</summary>
    NotAvailable,

    /// <summary>The interface exists but this process may not use it (EACCES/EPERM).</summary>
    PermissionDenied,

    /// <summary>The interface is busy or its quoting service is unavailable (EBUSY, EAGAIN, EIO, GetQuote service unavailable); may work later.</summary>
    Busy,

    /// <summary>The interface answered, but not with usable evidence (wrong size, firmware error status, unexpected provider).</summary>
    InvalidResponse,

    /// <summary>Another writer changed the report entry while we used it, twice in a row.</summary>
    Raced,

    /// <summary>The caller's input is wrong (report data not 64 bytes, bad provider specification).</summary>
    InvalidRequest,
}

/// <summary>A provider failed; the message says which interface, which path and what the kernel (or simulator) said.</summary>
public sealed class EvidenceProviderException : Exception
{
    public EvidenceProviderException(EvidenceProviderError error, string message, Exception? innerException = null)
        : base(message, innerException) => Error = error;

    public EvidenceProviderException()
    {
    }

    public EvidenceProviderException(string message)
        : base(message)
    {
    }

    public EvidenceProviderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public EvidenceProviderError Error { get; }

    /// <summary>True when trying again later may succeed.</summary>
    public bool IsTransient => Error is EvidenceProviderError.Busy or EvidenceProviderError.Raced;
}
