using System.Security.Cryptography.X509Certificates;
using AttestBroker.Evidence.Snp;

namespace AttestBroker.Verification.Snp;

/// <summary>
/// What the SNP verifier needs besides the report: the VCEK or VLEK that signed it, the CA certificates that chain it
/// (ASK or ASVK, ARK; may be empty, then the pinned vendor intermediates complete the chain), optional AMD CRLs (DER),
/// and notes about how they were obtained (e.g. a fetch that failed).
/// </summary>
public sealed record SnpCollateral
{
    public static SnpCollateral Empty { get; } = new();

    /// <summary>The VCEK or VLEK, or null when none could be had.</summary>
    public X509Certificate2? EndorsementKey { get; init; }

    /// <summary>ASK/ASVK and ARK as supplied, in any order.</summary>
    public IReadOnlyList<X509Certificate2> Chain { get; init; } = [];

    /// <summary>AMD CRLs (DER), any product; the verifier uses those issued by the chain's ARK.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Crls { get; init; } = [];

    /// <summary>Observations about obtaining the collateral, passed into the result's notes.</summary>
    public IReadOnlyList<VerificationReason> Notes { get; init; } = [];
}

/// <summary>Gives the SNP verifier the endorsement certificate and chain (and CRLs) for a parsed report.</summary>
public interface ISnpCertificateProvider
{
    /// <summary>
    /// The collateral for this report (its product, chip id, reported TCB and signing-key type decide which).
    /// Failing to obtain an item is not an exception: the item is left out and the reason put in <see cref="SnpCollateral.Notes"/>.
    /// </summary>
    Task<SnpCollateral> GetCollateralAsync(SnpReport report, CancellationToken cancellationToken = default);
}

/// <summary>An explicit collateral file or folder could not be read; the CLI reports it as a usage/I-O error (exit 2).</summary>
public sealed class SnpCollateralException : IOException
{
    public SnpCollateralException(string message)
        : base(message)
    {
    }

    public SnpCollateralException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public SnpCollateralException()
    {
    }
}
