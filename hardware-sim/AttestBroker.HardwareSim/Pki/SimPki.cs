using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.HardwareSim.Crypto;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Pki;

/// <summary>A certificate and the simulated private key it certifies.</summary>
public sealed record IssuedCertificate(X509Certificate2 Certificate, SimKey Key)
{
    public string CertificatePem => Certificate.ExportCertificatePem();
}

/// <summary>An AMD product's simulated roots: ARK (self-signed), ASK (signs VCEKs) and ASVK (signs VLEKs).</summary>
public sealed record AmdChain(AmdProduct Product, IssuedCertificate Ark, IssuedCertificate Ask, IssuedCertificate Asvk);

/// <summary>
/// The simulated PKI: an Intel-like SGX Root CA with a PCK Platform CA and a TCB Signing certificate, and per AMD
/// product an ARK, ASK and ASVK (RSA-4096, RSASSA-PSS SHA-384). Every key, serial and signature is derived from
/// the seed, so the same seed rebuilds the same PKI byte for byte. Leaf certificates (PCK, VCEK, VLEK) are issued on
/// demand for a platform, also deterministically. Root subjects say "Simulated" in their CN and every subject says so
/// in O; intermediates and leaves keep the vendors' CNs ("Intel SGX PCK Platform CA", "SEV-Milan", "SEV-VCEK") because
/// verifiers read meaning from them (platform vs processor CA, ASK vs ASVK).
/// </summary>
public sealed class SimPki : IDisposable
{
    public const string ManifestFile = "pki.json";
    public const string SeedFile = "seed.key";
    public const string Organization = "AttestBroker hardware-sim (SIMULATED, not a vendor certificate)";
    public const string DefaultBaseUrl = "http://127.0.0.1:8088";

    /// <summary>Fixed validity of every simulated certificate (so that a seed fixes the bytes).</summary>
    public static readonly DateTimeOffset NotBefore = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static readonly DateTimeOffset NotAfter = new(2049, 12, 31, 23, 59, 59, TimeSpan.Zero);

    private const int RsaBits = 4096;
    private readonly SeedMaterial _seed;

    // Leaves and platform keys are pure functions of the seed and their inputs (deterministic derivation and RFC 6979
    // signatures), so each is made once per input and reused: deriving one costs milliseconds, evidence is made per request.
    private readonly ConcurrentDictionary<string, IssuedCertificate> _leaves = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SimKey> _platformKeys = new(StringComparer.Ordinal);

    private SimPki(SeedMaterial seed, ulong? numericSeed, IssuedCertificate intelRoot, IssuedCertificate platformCa, IssuedCertificate tcbSigning, IReadOnlyDictionary<AmdProduct, AmdChain> amd)
    {
        _seed = seed;
        NumericSeed = numericSeed;
        IntelRoot = intelRoot;
        PckPlatformCa = platformCa;
        TcbSigning = tcbSigning;
        Amd = amd;
    }

    /// <summary>The number given to <c>init --seed</c>, or null for a random seed.</summary>
    public ulong? NumericSeed { get; }

    public IssuedCertificate IntelRoot { get; }

    public IssuedCertificate PckPlatformCa { get; }

    public IssuedCertificate TcbSigning { get; }

    public IReadOnlyDictionary<AmdProduct, AmdChain> Amd { get; }

    /// <summary>Base URL the certificates' CRL distribution points name (the simulator's own PCS/KDS server).</summary>
    public static string BaseUrl => DefaultBaseUrl;

    public static string RootCrlUrl => BaseUrl + "/sgx/certification/v4/rootcacrl";

    public static string PckCrlUrl => BaseUrl + "/sgx/certification/v4/pckcrl?ca=platform&encoding=der";

    /// <summary>Makes a PKI for all AMD products. With a numeric seed it is deterministic; without one the seed is random.</summary>
    public static SimPki Create(ulong? seed) => Create(seed, AmdProducts.All);

    /// <summary>
    /// Makes a PKI with the given AMD products. With a numeric seed every key comes from the seed (RSA-4096 keys from a
    /// seeded generator, which takes tens of seconds each); without one the seed is random and the RSA keys come from
    /// the platform's generator (fast).
    /// </summary>
    public static SimPki Create(ulong? seed, IEnumerable<AmdProduct> products)
    {
        ArgumentNullException.ThrowIfNull(products);
        var material = seed is { } n ? SeedMaterial.FromNumber(n) : SeedMaterial.Random();
        material.FastRsa = seed is null;
        var root = MakeIntelRoot(material, "intel-root", "Simulated Intel SGX Root CA");
        var platformCa = IssueIntelCa(material, root, "intel-pck-platform-ca", "Intel SGX PCK Platform CA");
        var tcbSigning = IssueIntelLeaf(material, root, "intel-tcb-signing", "Intel SGX TCB Signing", [], RootCrlUrl);
        var amd = new Dictionary<AmdProduct, AmdChain>();
        foreach (var product in products.Distinct())
        {
            amd[product] = MakeAmdChain(material, product);
        }

        return new SimPki(material, seed, root, platformCa, tcbSigning, amd);
    }

    // ---------------------------------------------------------------- leaves

    /// <summary>The PCK certificate (and key) of a TDX platform, issued by the PCK Platform CA.</summary>
    public IssuedCertificate IssuePck(TdxPlatform platform)
    {
        ArgumentNullException.ThrowIfNull(platform);
        var label = "pck:" + Convert.ToHexString(platform.Ppid) + ":" + Convert.ToHexString(platform.Fmspc) + ":" + Convert.ToHexString(platform.SgxTcbComponents) + ":" + platform.PceSvn;
        X509Extension[] extensions = [VendorExtensions.SgxPckExtension(platform)];
        return _leaves.GetOrAdd(LeafKey(label, extensions), _ => IssueIntelLeaf(_seed, PckPlatformCa, label, "Intel SGX PCK Certificate", extensions, PckCrlUrl));
    }

    /// <summary>The quote's attestation key of a platform (deterministic per PPID).</summary>
    public SimKey AttestationKey(TdxPlatform platform)
    {
        ArgumentNullException.ThrowIfNull(platform);
        var label = "attestation-key:" + Convert.ToHexString(platform.Ppid);
        return _platformKeys.GetOrAdd(label, l => PerEvidenceSigner(SimKey.FromPair(_seed.EcKey(l, SimCurve.P256))));
    }

    /// <summary>The VCEK of a chip at a reported TCB, issued by the product's ASK.</summary>
    public IssuedCertificate IssueVcek(SnpPlatform platform)
    {
        ArgumentNullException.ThrowIfNull(platform);
        var chain = Chain(platform.Product);
        var hwId = platform.ChipId.AsSpan(0, platform.Product.HwIdLength()).ToArray();
        var label = $"vcek:{platform.Product}:{Convert.ToHexString(hwId)}:{platform.ReportedTcb.ToHex(platform.Product)}";
        var extensions = VendorExtensions.AmdEndorsementExtensions(platform.Product, platform.ReportedTcb, hwId, null).ToArray();
        return _leaves.GetOrAdd(LeafKey(label, extensions), _ => PerEvidenceSigner(IssueAmdEndorsement(chain.Ask, label, "SEV-VCEK", extensions)));
    }

    /// <summary>The VLEK of a cloud provider at a reported TCB, issued by the product's ASVK.</summary>
    public IssuedCertificate IssueVlek(SnpPlatform platform)
    {
        ArgumentNullException.ThrowIfNull(platform);
        var chain = Chain(platform.Product);
        var label = $"vlek:{platform.Product}:{platform.CspId}:{platform.ReportedTcb.ToHex(platform.Product)}";
        var extensions = VendorExtensions.AmdEndorsementExtensions(platform.Product, platform.ReportedTcb, null, platform.CspId).ToArray();
        return _leaves.GetOrAdd(LeafKey(label, extensions), _ => PerEvidenceSigner(IssueAmdEndorsement(chain.Asvk, label, "SEV-VLEK", extensions)));
    }

    // Keys that sign every piece of evidence (attestation keys, VCEK, VLEK): with a numeric seed their signatures stay
    // reproducible (RFC 6979); with a random seed there is nothing to reproduce, so the platform's faster ECDSA signs.
    private SimKey PerEvidenceSigner(SimKey key) => NumericSeed is null ? key.WithPlatformEcdsa() : key;

    private IssuedCertificate PerEvidenceSigner(IssuedCertificate leaf) => NumericSeed is null ? leaf with { Key = leaf.Key.WithPlatformEcdsa() } : leaf;

    /// <summary>What makes a leaf: its label and every byte of its vendor extensions.</summary>
    private static string LeafKey(string label, IEnumerable<X509Extension> extensions)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var e in extensions)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(e.Oid?.Value ?? string.Empty));
            hash.AppendData([e.Critical ? (byte)1 : (byte)0]);
            hash.AppendData(BitConverter.GetBytes(e.RawData.Length));
            hash.AppendData(e.RawData);
        }

        return label + "|" + Convert.ToHexString(hash.GetHashAndReset());
    }

    public AmdChain Chain(AmdProduct product) =>
        Amd.TryGetValue(product, out var c) ? c : throw new SimulatorException($"the PKI has no {product} chain");

    /// <summary>A TCB Signing certificate under a root nobody trusts (for the tcb-info-foreign-signer fault).</summary>
    public (IssuedCertificate Signer, IssuedCertificate Root) ForeignTcbSigner()
    {
        var root = MakeIntelRoot(_seed, "foreign-root", "Foreign (untrusted) SGX Root CA");
        var signer = IssueIntelLeaf(_seed, root, "foreign-tcb-signing", "Intel SGX TCB Signing", [], RootCrlUrl);
        return (signer, root);
    }

    // ---------------------------------------------------------------- persistence

    /// <summary>Writes the PKI: public certificates as PEM, private keys as PKCS#8 PEM with mode 0600, the seed (0600) and a manifest.</summary>
    public void Save(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        Directory.CreateDirectory(dir);
        Directory.CreateDirectory(Path.Combine(dir, "intel"));
        WritePair(dir, "intel/root-ca", IntelRoot);
        WritePair(dir, "intel/pck-platform-ca", PckPlatformCa);
        WritePair(dir, "intel/tcb-signing", TcbSigning);
        foreach (var (product, chain) in Amd)
        {
            Directory.CreateDirectory(Path.Combine(dir, "amd", product.CliName()));
            WritePair(dir, $"amd/{product.CliName()}/ark", chain.Ark);
            WritePair(dir, $"amd/{product.CliName()}/ask", chain.Ask);
            WritePair(dir, $"amd/{product.CliName()}/asvk", chain.Asvk);
        }

        // The default platforms' leaves, for people and tools that want the files (the simulator re-derives them from the seed).
        WritePair(dir, "intel/pck-default", IssuePck(new TdxPlatform()));
        foreach (var product in Amd.Keys)
        {
            var platform = new SnpPlatform { Product = product, ChipId = SnpPlatform.DefaultChipId(product) };
            WritePair(dir, $"amd/{product.CliName()}/vcek-default", IssueVcek(platform));
            WritePair(dir, $"amd/{product.CliName()}/vlek-default", IssueVlek(platform));
        }

        var seed = _seed.ExportBytes();
        var hex = Convert.ToHexStringLower(seed);
        CryptographicOperations.ZeroMemory(seed);
        WriteSecret(Path.Combine(dir, SeedFile), hex + "\n");
        var manifest = new JsonObject
        {
            ["format"] = "attest-sim-pki/1",
            ["seed"] = NumericSeed is { } n ? JsonValue.Create(n) : null,
            ["intel_root"] = "intel/root-ca.pem",
            ["amd_products"] = new JsonArray([.. Amd.Keys.Select(p => JsonValue.Create(p.CliName()))]),
            ["note"] = "Simulated PKI. Certificates are public; *.key.pem and seed.key are private (mode 0600). Never trust these roots in production.",
        };
        File.WriteAllText(Path.Combine(dir, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Reads a PKI directory written by <see cref="Save"/>.</summary>
    public static SimPki Load(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!File.Exists(Path.Combine(dir, ManifestFile)))
        {
            throw new SimulatorException($"{dir} is not a simulated PKI directory (no {ManifestFile}; run 'attest-sim init --out {dir}')");
        }

        ulong? numeric = null;
        try
        {
            var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, ManifestFile)));
            numeric = manifest?["seed"]?.GetValue<ulong>();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw new SimulatorException($"{ManifestFile} is not valid JSON", ex);
        }

        var seedHex = File.ReadAllText(Path.Combine(dir, SeedFile)).Trim();
        byte[] seedBytes;
        try
        {
            seedBytes = Convert.FromHexString(seedHex);
        }
        catch (FormatException ex)
        {
            throw new SimulatorException($"{SeedFile} is not hex", ex);
        }

        SeedMaterial seed;
        try
        {
            seed = SeedMaterial.FromBytes(seedBytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seedBytes);
        }

        var amd = new Dictionary<AmdProduct, AmdChain>();
        foreach (var product in AmdProducts.All)
        {
            var pdir = Path.Combine(dir, "amd", product.CliName());
            if (Directory.Exists(pdir))
            {
                amd[product] = new AmdChain(product, ReadPair(dir, $"amd/{product.CliName()}/ark"), ReadPair(dir, $"amd/{product.CliName()}/ask"), ReadPair(dir, $"amd/{product.CliName()}/asvk"));
            }
        }

        return new SimPki(seed, numeric, ReadPair(dir, "intel/root-ca"), ReadPair(dir, "intel/pck-platform-ca"), ReadPair(dir, "intel/tcb-signing"), amd);
    }

    public void Dispose() => _seed.Dispose();

    private static void WritePair(string dir, string stem, IssuedCertificate issued)
    {
        File.WriteAllText(Path.Combine(dir, stem + ".pem"), issued.CertificatePem + "\n");
        WriteSecret(Path.Combine(dir, stem + ".key.pem"), issued.Key.ExportPkcs8Pem() + "\n");
    }

    private static IssuedCertificate ReadPair(string dir, string stem)
    {
        var certPath = Path.Combine(dir, stem + ".pem");
        var keyPath = Path.Combine(dir, stem + ".key.pem");
        if (!File.Exists(certPath) || !File.Exists(keyPath))
        {
            throw new SimulatorException($"the PKI directory lacks {stem}.pem or {stem}.key.pem");
        }

        try
        {
            var cert = X509Certificate2.CreateFromPem(File.ReadAllText(certPath));
            return new IssuedCertificate(cert, SimKey.FromPkcs8Pem(File.ReadAllText(keyPath)));
        }
        catch (CryptographicException ex)
        {
            throw new SimulatorException($"{stem}.pem is not a certificate", ex);
        }
    }

    /// <summary>Creates a file readable only by its owner (0600) before any secret is written to it.</summary>
    internal static void WriteSecret(string path, string content)
    {
        if (File.Exists(path))
        {
            File.Delete(path);
        }

        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, options);
        var bytes = Encoding.UTF8.GetBytes(content);
        try
        {
            stream.Write(bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    // ---------------------------------------------------------------- builders

    private static X500DistinguishedName IntelName(string cn)
    {
        // The builder encodes the last RDN added first; Intel's DER order is CN, O, L, ST, C.
        var b = new X500DistinguishedNameBuilder();
        b.AddCountryOrRegion("US");
        b.AddStateOrProvinceName("CA");
        b.AddLocalityName("Santa Clara");
        b.AddOrganizationName(Organization);
        b.AddCommonName(cn);
        return b.Build();
    }

    private static X500DistinguishedName AmdName(string cn)
    {
        // AMD's DER order is OU, C, L, ST, O, CN (the builder encodes the last RDN added first). O stays "Advanced
        // Micro Devices" because verifiers recognise AMD certificates in a collateral folder by it, as the KDS serves
        // them; a second OU says the certificate is simulated.
        var b = new X500DistinguishedNameBuilder();
        b.AddCommonName(cn);
        b.AddOrganizationName("Advanced Micro Devices");
        b.AddStateOrProvinceName("CA");
        b.AddLocalityName("Santa Clara");
        b.AddCountryOrRegion("US");
        b.AddOrganizationalUnitName(Organization);
        b.AddOrganizationalUnitName("Engineering");
        return b.Build();
    }

    private static IssuedCertificate MakeIntelRoot(SeedMaterial seed, string label, string cn)
    {
        var key = SimKey.FromPair(seed.EcKey(label, SimCurve.P256));
        var name = IntelName(cn);
        var req = new CertificateRequest(name, key.PublicKey(), HashAlgorithmName.SHA256);
        var ski = new X509SubjectKeyIdentifierExtension(key.PublicKey(), X509SubjectKeyIdentifierHashAlgorithm.Sha1, false);
        req.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(ski));
        req.CertificateExtensions.Add(CertificateRevocationListBuilder.BuildCrlDistributionPointExtension([RootCrlUrl]));
        req.CertificateExtensions.Add(ski);
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        var cert = req.Create(name, key.SignatureGenerator(), NotBefore, NotAfter, seed.Serial(label));
        return new IssuedCertificate(cert, key);
    }

    private static IssuedCertificate IssueIntelCa(SeedMaterial seed, IssuedCertificate root, string label, string cn)
    {
        var key = SimKey.FromPair(seed.EcKey(label, SimCurve.P256));
        var req = new CertificateRequest(IntelName(cn), key.PublicKey(), HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(AuthorityKeyId(root.Certificate));
        req.CertificateExtensions.Add(CertificateRevocationListBuilder.BuildCrlDistributionPointExtension([RootCrlUrl]));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(key.PublicKey(), X509SubjectKeyIdentifierHashAlgorithm.Sha1, false));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        var cert = req.Create(root.Certificate.SubjectName, root.Key.SignatureGenerator(), NotBefore, NotAfter, seed.Serial(label));
        return new IssuedCertificate(cert, key);
    }

    private static IssuedCertificate IssueIntelLeaf(SeedMaterial seed, IssuedCertificate issuer, string label, string cn, IEnumerable<X509Extension> extra, string crlUrl)
    {
        var key = SimKey.FromPair(seed.EcKey(label, SimCurve.P256));
        var req = new CertificateRequest(IntelName(cn), key.PublicKey(), HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(AuthorityKeyId(issuer.Certificate));
        req.CertificateExtensions.Add(CertificateRevocationListBuilder.BuildCrlDistributionPointExtension([crlUrl]));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(key.PublicKey(), X509SubjectKeyIdentifierHashAlgorithm.Sha1, false));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, true));
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        foreach (var e in extra)
        {
            req.CertificateExtensions.Add(e);
        }

        var cert = issuer.Key.SignatureGenerator();
        var created = req.Create(issuer.Certificate.SubjectName, cert, NotBefore, NotAfter, seed.Serial(label));
        return new IssuedCertificate(created, key);
    }

    private static AmdChain MakeAmdChain(SeedMaterial seed, AmdProduct product)
    {
        var p = product.KdsName();
        var arkKey = SimKey.FromPair(seed.RsaKey("ark:" + p, RsaBits));
        var arkName = AmdName("Simulated ARK-" + p);
        var req = new CertificateRequest(arkName, arkKey.PublicKey(), HashAlgorithmName.SHA384);
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(arkKey.PublicKey(), X509SubjectKeyIdentifierHashAlgorithm.Sha1, false));
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(CertificateRevocationListBuilder.BuildCrlDistributionPointExtension([$"{BaseUrl}/vcek/v1/{p}/crl"]));
        var ark = new IssuedCertificate(req.Create(arkName, arkKey.SignatureGenerator(), NotBefore, NotAfter, seed.Serial("ark:" + p)), arkKey);
        var ask = IssueAmdCa(seed, ark, "ask:" + p, "SEV-" + p, $"{BaseUrl}/vcek/v1/{p}/crl");
        var asvk = IssueAmdCa(seed, ark, "asvk:" + p, "SEV-VLEK-" + p, $"{BaseUrl}/vlek/v1/{p}/crl");
        return new AmdChain(product, ark, ask, asvk);
    }

    private static IssuedCertificate IssueAmdCa(SeedMaterial seed, IssuedCertificate ark, string label, string cn, string crlUrl)
    {
        var key = SimKey.FromPair(seed.RsaKey(label, RsaBits));
        var req = new CertificateRequest(AmdName(cn), key.PublicKey(), HashAlgorithmName.SHA384);
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(key.PublicKey(), X509SubjectKeyIdentifierHashAlgorithm.Sha1, false));
        req.CertificateExtensions.Add(AuthorityKeyId(ark.Certificate));
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        req.CertificateExtensions.Add(CertificateRevocationListBuilder.BuildCrlDistributionPointExtension([crlUrl]));
        var cert = req.Create(ark.Certificate.SubjectName, ark.Key.SignatureGenerator(), NotBefore, NotAfter, seed.Serial(label));
        return new IssuedCertificate(cert, key);
    }

    private IssuedCertificate IssueAmdEndorsement(IssuedCertificate issuer, string label, string cn, IEnumerable<X509Extension> extensions)
    {
        var key = SimKey.FromPair(_seed.EcKey(label, SimCurve.P384));
        var req = new CertificateRequest(AmdName(cn), key.PublicKey(), HashAlgorithmName.SHA384);
        foreach (var e in extensions)
        {
            req.CertificateExtensions.Add(e);
        }

        var cert = req.Create(issuer.Certificate.SubjectName, issuer.Key.SignatureGenerator(), NotBefore, NotAfter, _seed.Serial(label));
        return new IssuedCertificate(cert, key);
    }

    private static X509AuthorityKeyIdentifierExtension AuthorityKeyId(X509Certificate2 issuer)
    {
        var ski = issuer.Extensions.OfType<X509SubjectKeyIdentifierExtension>().First();
        return X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(ski);
    }
}
