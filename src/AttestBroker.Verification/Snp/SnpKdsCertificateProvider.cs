using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Evidence.Snp;
using AttestBroker.Verification.Collateral;

namespace AttestBroker.Verification.Snp;

/// <summary>The AMD KDS paths (relative, so a base URL with a path prefix, such as a simulator's, works).</summary>
public static class SnpKdsPaths
{
    /// <summary>
    /// /vcek/v1/{product}/{hwid}?blSPL=&amp;teeSPL=&amp;snpSPL=&amp;ucodeSPL= with SPLs from REPORTED_TCB in decimal. Milan and
    /// Genoa use all 64 bytes of CHIP_ID as hwid; Turin uses CHIP_ID[0..8] and puts fmcSPL first.
    /// </summary>
    public static string Vcek(SnpProduct product, ReadOnlySpan<byte> chipId, SnpTcbVersion reportedTcb)
    {
        if (chipId.Length != SnpReportLayout.ChipIdSize)
        {
            throw new ArgumentException($"CHIP_ID must be {SnpReportLayout.ChipIdSize} bytes", nameof(chipId));
        }

        var tcb = reportedTcb.For(product);
        var ic = CultureInfo.InvariantCulture;
        if (product == SnpProduct.Turin)
        {
            return string.Create(ic, $"vcek/v1/Turin/{Convert.ToHexStringLower(chipId[..8])}?fmcSPL={tcb.Fmc}&blSPL={tcb.BootLoader}&teeSPL={tcb.Tee}&snpSPL={tcb.Snp}&ucodeSPL={tcb.Microcode}");
        }

        return string.Create(ic, $"vcek/v1/{product.ToKdsName()}/{Convert.ToHexStringLower(chipId)}?blSPL={tcb.BootLoader}&teeSPL={tcb.Tee}&snpSPL={tcb.Snp}&ucodeSPL={tcb.Microcode}");
    }

    /// <summary>/vcek/v1/{product}/cert_chain (ASK + ARK) or /vlek/v1/{product}/cert_chain (ASVK + ARK).</summary>
    public static string CertChain(SnpProduct product, bool vlek) => $"{(vlek ? "vlek" : "vcek")}/v1/{product.ToKdsName()}/cert_chain";

    /// <summary>/vcek/v1/{product}/crl or /vlek/v1/{product}/crl.</summary>
    public static string Crl(SnpProduct product, bool vlek) => $"{(vlek ? "vlek" : "vcek")}/v1/{product.ToKdsName()}/crl";
}

/// <summary>
/// Gets what the local files lack from the AMD KDS (or a service with the same paths) through the shared
/// <see cref="CollateralHttpCache"/>: the VCEK for the report's chip and REPORTED_TCB, the cert_chain and the CRL of
/// the product. A VLEK cannot be fetched publicly. Failures become notes; the verifier then names what is missing.
/// </summary>
public sealed class SnpKdsCertificateProvider : ISnpCertificateProvider
{
    private readonly CollateralHttpCache _cache;
    private readonly Uri _baseUrl;
    private readonly ISnpCertificateProvider? _local;

    /// <param name="cache">The shared HTTP cache.</param>
    /// <param name="baseUrl">KDS base URL; default the cache options' AmdKdsBaseUrl.</param>
    /// <param name="local">Files consulted first; the KDS is asked only for what they lack.</param>
    public SnpKdsCertificateProvider(CollateralHttpCache cache, Uri? baseUrl = null, ISnpCertificateProvider? local = null)
    {
        _cache = cache ?? throw new ArgumentNullException(nameof(cache));
        var b = baseUrl ?? cache.Options.AmdKdsBaseUrl;
        _baseUrl = b.AbsoluteUri.EndsWith('/') ? b : new Uri(b.AbsoluteUri + "/");
        _local = local;
    }

    public async Task<SnpCollateral> GetCollateralAsync(SnpReport report, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(report);
        var have = _local is null ? SnpCollateral.Empty : await _local.GetCollateralAsync(report, cancellationToken).ConfigureAwait(false);
        var notes = new List<VerificationReason>(have.Notes);
        var vlek = report.SigningKey == SnpSigningKey.Vlek;
        var key = have.EndorsementKey;

        // Which products to ask for: CPUID (v3+), else the local VCEK's productName, else Milan then Genoa (v2 reports predate Turin).
        List<SnpProduct> products = report.ProductFromCpuid != SnpProduct.Unknown
            ? [report.ProductFromCpuid]
            : key is not null && ProductOf(key) is var p and not SnpProduct.Unknown ? [p] : [SnpProduct.Milan, SnpProduct.Genoa];

        if (key is null && report.SigningKey == SnpSigningKey.Vcek)
        {
            if (report.ChipIdIsZero)
            {
                notes.Add(new(ReasonCodes.CollateralUnavailable, "the VCEK cannot be fetched: CHIP_ID is masked (all zero)"));
            }
            else
            {
                foreach (var product in products)
                {
                    var uri = new Uri(_baseUrl, SnpKdsPaths.Vcek(product, report.ChipId.Span, report.ReportedTcb));
                    try
                    {
                        var response = await _cache.GetAsync(uri, CertificateFreshness, cancellationToken).ConfigureAwait(false);
                        key = SnpPem.ReadCertificates(response.Body)[0];
                        products = [product];
                        break;
                    }
                    catch (CollateralUnavailableException e)
                    {
                        notes.Add(new(ReasonCodes.CollateralUnavailable, "VCEK: " + e.Message));
                    }
                    catch (CryptographicException e)
                    {
                        notes.Add(new(ReasonCodes.CollateralInvalid, $"VCEK from {uri.GetLeftPart(UriPartial.Path)} is not a certificate: {e.Message}"));
                    }
                }
            }
        }
        else if (key is null && vlek)
        {
            notes.Add(new(ReasonCodes.CollateralUnavailable, "a VLEK is not publicly fetchable from the KDS; supply it (--vcek or --collateral)"));
        }

        var chain = have.Chain;
        var crls = have.Crls;
        if (key is not null && ProductOf(key) is var keyProduct and not SnpProduct.Unknown)
        {
            products = [keyProduct];
        }

        if (products.Count == 1)
        {
            var product = products[0];
            if (chain.Count == 0)
            {
                var uri = new Uri(_baseUrl, SnpKdsPaths.CertChain(product, vlek));
                try
                {
                    var response = await _cache.GetAsync(uri, CertificateFreshness, cancellationToken).ConfigureAwait(false);
                    chain = SnpPem.ReadCertificates(response.Body);
                }
                catch (CollateralUnavailableException e)
                {
                    notes.Add(new(ReasonCodes.CollateralUnavailable, "cert_chain (the embedded intermediates are used instead): " + e.Message));
                }
                catch (CryptographicException e)
                {
                    notes.Add(new(ReasonCodes.CollateralInvalid, $"cert_chain from {uri.GetLeftPart(UriPartial.Path)} is not PEM certificates: {e.Message}"));
                }
            }

            if (crls.Count == 0)
            {
                var uri = new Uri(_baseUrl, SnpKdsPaths.Crl(product, vlek));
                try
                {
                    var response = await _cache.GetAsync(uri, CrlFreshness, cancellationToken).ConfigureAwait(false);
                    crls = [response.Body];
                }
                catch (CollateralUnavailableException e)
                {
                    notes.Add(new(ReasonCodes.CollateralUnavailable, "AMD CRL: " + e.Message));
                }
            }
        }

        return new SnpCollateral { EndorsementKey = key, Chain = chain, Crls = crls, Notes = notes };
    }

    private static SnpProduct ProductOf(X509Certificate2 cert)
    {
        try
        {
            return AmdCertificateExtensions.Read(cert).Product;
        }
        catch (FormatException)
        {
            return SnpProduct.Unknown;
        }
    }

    /// <summary>Certificates are fresh until the earliest notAfter among them.</summary>
    private static DateTimeOffset CertificateFreshness(CachedResponse response)
    {
        try
        {
            var certs = SnpPem.ReadCertificates(response.Body);
            return certs.Min(c => new DateTimeOffset(c.NotAfter.ToUniversalTime(), TimeSpan.Zero));
        }
        catch (CryptographicException e)
        {
            throw new FormatException("not a DER or PEM certificate: " + e.Message, e);
        }
    }

    /// <summary>A CRL is fresh until its nextUpdate.</summary>
    private static DateTimeOffset CrlFreshness(CachedResponse response)
    {
        var crl = AmdCrl.TryParse(response.Body) ?? throw new FormatException("not an X.509 CRL");
        return crl.NextUpdate ?? throw new FormatException("the CRL has no nextUpdate");
    }
}
