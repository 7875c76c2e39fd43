using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Testing;
using AttestBroker.Verification.Snp;

namespace AttestBroker.Verification.Tests.Snp;

/// <summary>What to put into a test-minted VCEK or VLEK.</summary>
internal sealed record EndorsementSpec
{
    public string? ProductName { get; init; } = "Milan-B0";
    public int? Bl { get; init; } = 2;
    public int? Tee { get; init; }
    public int? Snp { get; init; } = 5;
    public int? Ucode { get; init; } = 68;
    public int? Fmc { get; init; }
    public byte[]? HwId { get; init; }
    public bool WrapHwId { get; init; }
    public string? CspId { get; init; }
    public byte[] Serial { get; init; } = [0x01];
    public DateTimeOffset NotBefore { get; init; } = SnpTestPki.Epoch;
    public DateTimeOffset NotAfter { get; init; } = SnpTestPki.Epoch.AddYears(7);
}

/// <summary>
/// A test AMD-like PKI: an ARK and an ASK (or ASVK), RSA with RSASSA-PSS SHA-384, minting P-384 VCEKs/VLEKs with AMD
/// extensions, CRLs, and re-signing SNP reports. Trusted only through <see cref="TrustStore.WithSimulatedAnchors"/>.
/// </summary>
internal sealed class SnpTestPki
{
    public static readonly DateTimeOffset Epoch = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly DateTimeOffset At = new(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string, bool), SnpTestPki> SharedPkis = new();

    private readonly RSA _arkKey;
    private readonly RSA _caKey;

    /// <summary>One PKI per product and kind for the whole test run (RSA key generation is slow); never disposed.</summary>
    public static SnpTestPki Shared(string product = "Milan", bool vlek = false) =>
        SharedPkis.GetOrAdd((product, vlek), k => new SnpTestPki(k.Item1, k.Item2));

    private SnpTestPki(string product = "Milan", bool vlek = false)
    {
        Product = product;
        _arkKey = RSA.Create(2048);
        _caKey = RSA.Create(2048);
        var arkName = new X500DistinguishedName($"CN=ARK-{product}, OU=Engineering, O=AttestBroker Test PKI, C=US");
        var arkReq = new CertificateRequest(arkName, _arkKey, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        arkReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        arkReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        arkReq.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(arkReq.PublicKey, false));
        Ark = arkReq.CreateSelfSigned(Epoch.AddYears(-1), Epoch.AddYears(25));

        var caName = new X500DistinguishedName($"CN={(vlek ? "SEV-VLEK-" : "SEV-")}{product}, OU=Engineering, O=AttestBroker Test PKI, C=US");
        var caReq = new CertificateRequest(caName, _caKey, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caReq.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caReq.PublicKey, false));
        Intermediate = caReq.Create(Ark, Epoch.AddYears(-1), Epoch.AddYears(25), [0x01, 0x00, 0x01]).CopyWithPrivateKey(_caKey);
    }

    public string Product { get; }

    /// <summary>The ARK, with its private key.</summary>
    public X509Certificate2 Ark { get; }

    /// <summary>The ASK (or ASVK), with its private key.</summary>
    public X509Certificate2 Intermediate { get; }

    public X509Certificate2 ArkPublic => X509CertificateLoader.LoadCertificate(Ark.RawData);

    public X509Certificate2 IntermediatePublic => X509CertificateLoader.LoadCertificate(Intermediate.RawData);

    /// <summary>The production store plus this ARK as a simulated anchor.</summary>
    public TrustStore Trust => TrustStore.Production.WithSimulatedAnchors([new TrustAnchor(ArkPublic, TrustVendor.Amd, Product, true)]);

    public VerificationContext Context => new(At, Trust);

    public SnpCollateral Collateral(X509Certificate2 endorsement, params ReadOnlyMemory<byte>[] crls) =>
        new() { EndorsementKey = endorsement, Chain = [IntermediatePublic, ArkPublic], Crls = crls };

    /// <summary>A P-384 VCEK/VLEK signed by the intermediate; returns the public certificate and its private key.</summary>
    public (X509Certificate2 Certificate, ECDsa Key) Mint(EndorsementSpec spec)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var name = new X500DistinguishedName(spec.CspId is null ? "CN=SEV-VCEK, OU=Engineering, O=AttestBroker Test PKI, C=US" : "CN=SEV-VLEK, OU=Engineering, O=AttestBroker Test PKI, C=US");
        var req = new CertificateRequest(name, key, HashAlgorithmName.SHA384);
        req.CertificateExtensions.Add(IntegerExt(AmdCertificateExtensions.StructVersionOid, 1));
        if (spec.ProductName is not null)
        {
            var w = new AsnWriter(AsnEncodingRules.DER);
            w.WriteCharacterString(UniversalTagNumber.IA5String, spec.ProductName);
            req.CertificateExtensions.Add(new X509Extension(AmdCertificateExtensions.ProductNameOid, w.Encode(), false));
        }

        AddInt(req, AmdCertificateExtensions.BootLoaderSplOid, spec.Bl);
        AddInt(req, AmdCertificateExtensions.TeeSplOid, spec.Tee ?? 0);
        AddInt(req, AmdCertificateExtensions.SnpSplOid, spec.Snp);
        AddInt(req, AmdCertificateExtensions.MicrocodeSplOid, spec.Ucode);
        AddInt(req, AmdCertificateExtensions.FmcSplOid, spec.Fmc);
        if (spec.HwId is not null)
        {
            byte[] value = spec.HwId;
            if (spec.WrapHwId)
            {
                var w = new AsnWriter(AsnEncodingRules.DER);
                w.WriteOctetString(spec.HwId);
                value = w.Encode();
            }

            req.CertificateExtensions.Add(new X509Extension(AmdCertificateExtensions.HwIdOid, value, false));
        }

        if (spec.CspId is not null)
        {
            var w = new AsnWriter(AsnEncodingRules.DER);
            w.WriteCharacterString(UniversalTagNumber.IA5String, spec.CspId);
            req.CertificateExtensions.Add(new X509Extension(AmdCertificateExtensions.CspIdOid, w.Encode(), false));
        }

        var generator = X509SignatureGenerator.CreateForRSA(_caKey, RSASignaturePadding.Pss);
        var cert = req.Create(Intermediate.SubjectName, generator, spec.NotBefore, spec.NotAfter, spec.Serial);
        return (cert, key);
    }

    /// <summary>A CRL issued by the ARK (or signed by another key under the ARK's name) listing these serials.</summary>
    public byte[] Crl(IEnumerable<byte[]> serials, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate, RSA? signWith = null)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var s in serials)
        {
            builder.AddEntry(s, thisUpdate);
        }

        var generator = X509SignatureGenerator.CreateForRSA(signWith ?? _arkKey, RSASignaturePadding.Pss);
        var aki = X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ark, includeKeyIdentifier: true, includeIssuerAndSerial: false);
        return builder.Build(Ark.SubjectName, generator, BigInteger.One, nextUpdate, HashAlgorithmName.SHA384, aki, thisUpdate);
    }

    private static void AddInt(CertificateRequest req, string oid, int? value)
    {
        if (value is { } v)
        {
            req.CertificateExtensions.Add(IntegerExt(oid, v));
        }
    }

    private static X509Extension IntegerExt(string oid, long value)
    {
        var w = new AsnWriter(AsnEncodingRules.DER);
        w.WriteInteger(value);
        return new X509Extension(oid, w.Encode(), false);
    }
}

/// <summary>Real vectors and report re-signing.</summary>
internal static class SnpVectors
{
    public const string Report = "snp/go-sev-guest/attestation.bin";
    public const string Vcek = "snp/go-sev-guest/vcek.testcer.der";
    public const string MilanChain = "snp/go-sev-guest/trust/ask_ark_milan.pem";
    public const string GenoaChain = "snp/go-sev-guest/trust/ask_ark_genoa.pem";
    public const string MilanVlekChain = "snp/go-sev-guest/trust/ask_ark_milan_vlek.pem";

    /// <summary>2022-09-24T01:00:00Z, go-sev-guest's reference time for SG-1.</summary>
    public static readonly DateTimeOffset Sg1Time = new(2022, 9, 24, 1, 0, 0, TimeSpan.Zero);

    public static byte[] ReadReport() => Vectors.Read(Report);

    public static X509Certificate2 ReadVcek() => X509CertificateLoader.LoadCertificate(Vectors.Read(Vcek));

    public static List<X509Certificate2> ReadChain(string path)
    {
        var pem = File.ReadAllText(Vectors.Path(path));
        var col = new X509Certificate2Collection();
        col.ImportFromPem(pem);
        return [.. col];
    }

    public static SnpCollateral Sg1Collateral() => new() { EndorsementKey = ReadVcek(), Chain = ReadChain(MilanChain) };

    public static VerificationContext Sg1Context => new(Sg1Time, TrustStore.Production);

    /// <summary>Signs report[0, 0x2A0) with the key and writes R and S little-endian into the signature fields.</summary>
    public static byte[] Sign(byte[] report, ECDsa key)
    {
        var r = (byte[])report.Clone();
        var sig = key.SignData(r.AsSpan(0, 0x2A0), HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        r.AsSpan(0x2A0, 0x4A0 - 0x2A0).Clear();
        var rPart = sig.AsSpan(0, 48).ToArray();
        var sPart = sig.AsSpan(48, 48).ToArray();
        Array.Reverse(rPart);
        Array.Reverse(sPart);
        rPart.CopyTo(r, 0x2A0);
        sPart.CopyTo(r, 0x2E8);
        return r;
    }

    /// <summary>SG-1 as a v3 report for the given CPUID family/model (unsigned until <see cref="Sign"/>).</summary>
    public static byte[] AsV3(byte[] report, byte family, byte model)
    {
        var r = (byte[])report.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0), 3);
        r[0x188] = family;
        r[0x189] = model;
        r[0x18A] = 1;
        return r;
    }

    public static byte[] ChipId(byte[] report) => report.AsSpan(0x1A0, 64).ToArray();
}
