using System.Security.Cryptography.X509Certificates;

namespace AttestBroker.Verification;

/// <summary>Whose root a trust anchor is.</summary>
public enum TrustVendor
{
    Intel,
    Amd,
}

/// <summary>A root of trust. <paramref name="Product"/> is the AMD product (Milan, Genoa, Turin) or null for Intel.</summary>
public sealed record TrustAnchor(X509Certificate2 Certificate, TrustVendor Vendor, string? Product, bool Simulated);

/// <summary>
/// The roots a chain may end in, and well-known vendor intermediates (AMD ASK/ASVK) that may complete a chain when
/// the evidence or the caller does not supply them. <see cref="Production"/> holds only Intel's and AMD's real,
/// pinned roots; simulated roots enter only through <see cref="WithSimulatedAnchors"/>, which the host calls on an
/// explicit operator setting, and every anchor added that way is marked <see cref="TrustAnchor.Simulated"/>.
/// </summary>
public sealed class TrustStore
{
    private static readonly Lazy<TrustStore> ProductionStore = new(BuildProduction);

    private TrustStore(IReadOnlyList<TrustAnchor> anchors, IReadOnlyList<TrustAnchor> intermediates)
    {
        Anchors = anchors;
        KnownIntermediates = intermediates;
    }

    /// <summary>The real vendors' roots only: Intel SGX Root CA, AMD ARK-Milan, ARK-Genoa, ARK-Turin.</summary>
    public static TrustStore Production => ProductionStore.Value;

    public IReadOnlyList<TrustAnchor> Anchors { get; }

    /// <summary>Vendor intermediates (AMD ASK and ASVK per product); their Simulated flag follows the root they chain to.</summary>
    public IReadOnlyList<TrustAnchor> KnownIntermediates { get; }

    /// <summary>True when any anchor in this store is simulated.</summary>
    public bool TrustsSimulator => Anchors.Any(a => a.Simulated);

    /// <summary>A new store with these roots (and intermediates) added, each marked simulated.</summary>
    public TrustStore WithSimulatedAnchors(IEnumerable<TrustAnchor> roots, IEnumerable<TrustAnchor>? intermediates = null)
    {
        ArgumentNullException.ThrowIfNull(roots);
        var addedRoots = roots.Select(r => r with { Simulated = true }).ToList();
        var addedIntermediates = (intermediates ?? []).Select(r => r with { Simulated = true }).ToList();
        return new TrustStore([.. Anchors, .. addedRoots], [.. KnownIntermediates, .. addedIntermediates]);
    }

    /// <summary>The anchor that is byte-for-byte this certificate, or null. Pinning is by exact DER, never by name alone.</summary>
    public TrustAnchor? FindAnchor(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        foreach (var a in Anchors)
        {
            if (a.Certificate.RawDataMemory.Span.SequenceEqual(certificate.RawDataMemory.Span))
            {
                return a;
            }
        }

        return null;
    }

    /// <summary>Anchors of a vendor (and product, when given) whose subject names the certificate's issuer.</summary>
    public IEnumerable<TrustAnchor> AnchorsIssuing(X509Certificate2 certificate, TrustVendor vendor)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Anchors.Where(a => a.Vendor == vendor && a.Certificate.SubjectName.RawData.AsSpan().SequenceEqual(certificate.IssuerName.RawData));
    }

    private static TrustStore BuildProduction()
    {
        static X509Certificate2 Load(string b64) => X509CertificateLoader.LoadCertificate(Convert.FromBase64String(b64));

        var anchors = new List<TrustAnchor>
        {
            new(Load(EmbeddedRoots.IntelSgxRootCa), TrustVendor.Intel, null, false),
            new(Load(EmbeddedRoots.ArkMilan), TrustVendor.Amd, "Milan", false),
            new(Load(EmbeddedRoots.ArkGenoa), TrustVendor.Amd, "Genoa", false),
            new(Load(EmbeddedRoots.ArkTurin), TrustVendor.Amd, "Turin", false),
        };
        var intermediates = new List<TrustAnchor>
        {
            new(Load(EmbeddedRoots.AskMilan), TrustVendor.Amd, "Milan", false),
            new(Load(EmbeddedRoots.AskGenoa), TrustVendor.Amd, "Genoa", false),
            new(Load(EmbeddedRoots.AskTurin), TrustVendor.Amd, "Turin", false),
            new(Load(EmbeddedRoots.AsvkMilan), TrustVendor.Amd, "Milan", false),
            new(Load(EmbeddedRoots.AsvkGenoa), TrustVendor.Amd, "Genoa", false),
            new(Load(EmbeddedRoots.AsvkTurin), TrustVendor.Amd, "Turin", false),
        };
        return new TrustStore(anchors, intermediates);
    }
}
