using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Evidence.Snp;

namespace AttestBroker.Verification.Snp;

/// <summary>AMD certificates and CRLs from files and folders (the CLI's --vcek, --ca-chain and --collateral).</summary>
public static class SnpCertificateSource
{
    /// <summary>Files above this size are not AMD certificates or CRLs and are not read from collateral folders.</summary>
    private const long MaxCollateralFileBytes = 4 * 1024 * 1024;

    /// <summary>
    /// Loads everything at once, so that an unreadable explicit path fails here (as <see cref="SnpCollateralException"/>)
    /// rather than during verification.
    /// </summary>
    /// <param name="collateralPaths">Files or folders (read recursively); AMD certificates (with AMD extensions, or issued to/by
    /// Advanced Micro Devices), AMD CRLs and host certificate tables (auxblob) are recognised by content, anything else is ignored.</param>
    /// <param name="vcekFile">DER or PEM VCEK/VLEK; a PEM with several certificates is the VCEK/VLEK first, then its chain.</param>
    /// <param name="caChainFile">PEM or DER ASK+ARK or ASVK+ARK.</param>
    public static ISnpCertificateProvider FromPaths(IEnumerable<string> collateralPaths, string? vcekFile, string? caChainFile)
    {
        ArgumentNullException.ThrowIfNull(collateralPaths);
        X509Certificate2? explicitKey = null;
        var chain = new List<X509Certificate2>();
        var candidates = new List<X509Certificate2>();
        var crls = new List<ReadOnlyMemory<byte>>();

        if (vcekFile is not null)
        {
            var certs = ReadExplicitCertificates(vcekFile, "--vcek");
            explicitKey = certs[0];
            chain.AddRange(certs.Skip(1));
        }

        if (caChainFile is not null)
        {
            chain.AddRange(ReadExplicitCertificates(caChainFile, "--ca-chain"));
        }

        foreach (var path in collateralPaths)
        {
            if (File.Exists(path))
            {
                Classify(ReadExplicit(path, "--collateral"), candidates, chain, crls);
            }
            else if (Directory.Exists(path))
            {
                IEnumerable<string> files;
                try
                {
                    files = Directory.EnumerateFiles(path, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint }).Order(StringComparer.Ordinal).ToList();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new SnpCollateralException($"--collateral {path}: folder cannot be read: {e.Message}", e);
                }

                foreach (var file in files)
                {
                    byte[] data;
                    try
                    {
                        if (new FileInfo(file).Length > MaxCollateralFileBytes)
                        {
                            continue;
                        }

                        data = File.ReadAllBytes(file);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        continue; // not an explicit path: an unreadable file in a folder is skipped like any unrecognised one
                    }

                    Classify(data, candidates, chain, crls);
                }
            }
            else
            {
                throw new SnpCollateralException($"--collateral {path}: no such file or folder");
            }
        }

        return new FileSnpCertificateProvider(explicitKey, Distinct(chain), Distinct(candidates), crls);
    }

    private static byte[] ReadExplicit(string path, string option)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new SnpCollateralException($"{option} {path}: cannot be read: {e.Message}", e);
        }
    }

    private static List<X509Certificate2> ReadExplicitCertificates(string path, string option)
    {
        var data = ReadExplicit(path, option);
        try
        {
            return SnpPem.ReadCertificates(data);
        }
        catch (Exception e) when (e is CryptographicException or FormatException)
        {
            throw new SnpCollateralException($"{option} {path}: not a DER or PEM certificate: {e.Message}", e);
        }
    }

    private static void Classify(byte[] data, List<X509Certificate2> candidates, List<X509Certificate2> chain, List<ReadOnlyMemory<byte>> crls)
    {
        List<X509Certificate2>? certs = null;
        try
        {
            certs = SnpPem.ReadCertificates(data);
        }
        catch (Exception e) when (e is CryptographicException or FormatException)
        {
            // not a certificate; maybe a CRL
        }

        if (certs is not null)
        {
            foreach (var c in certs)
            {
                if (HasAmdExtensions(c))
                {
                    candidates.Add(c);
                }
                else if (IsAmdName(c.SubjectName) || IsAmdName(c.IssuerName))
                {
                    chain.Add(c);
                }
            }

            return;
        }

        if (SnpCertificateTable.StartsWithKnownEntry(data))
        {
            ClassifyTable(data, candidates, chain);
            return;
        }

        var crl = AmdCrl.TryParse(data);
        if (crl is not null && (IsAmdName(new X500DistinguishedName(crl.Issuer)) || crl.Parts.AlgorithmOid == AmdRsaPss.RsassaPssOid))
        {
            crls.Add(SnpPem.TryUnwrap(data, "X509 CRL") ?? data);
        }
    }

    /// <summary>A host certificate table (extended report / configfs auxblob): VCEK/VLEK are candidates, ASK/ASVK/ARK join the chain.</summary>
    private static void ClassifyTable(byte[] data, List<X509Certificate2> candidates, List<X509Certificate2> chain)
    {
        IReadOnlyList<SnpCertificateTableEntry> entries;
        try
        {
            entries = SnpCertificateTable.Parse(data);
        }
        catch (Evidence.EvidenceFormatException)
        {
            return; // not a well-formed table: ignored like any unrecognised file
        }

        foreach (var entry in entries)
        {
            X509Certificate2 cert;
            try
            {
                cert = X509CertificateLoader.LoadCertificate(entry.Data.Span);
            }
            catch (CryptographicException)
            {
                continue;
            }

            switch (entry.Kind)
            {
                case SnpCertificateKind.Vcek or SnpCertificateKind.Vlek:
                    candidates.Add(cert);
                    break;
                case SnpCertificateKind.Ask or SnpCertificateKind.Ark:
                    chain.Add(cert);
                    break;
            }
        }
    }

    private static bool HasAmdExtensions(X509Certificate2 c)
    {
        foreach (var e in c.Extensions)
        {
            if (e.Oid?.Value?.StartsWith(AmdCertificateExtensions.Arc + ".", StringComparison.Ordinal) == true)
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsAmdName(X500DistinguishedName name)
    {
        foreach (var rdn in name.EnumerateRelativeDistinguishedNames())
        {
            if (rdn.GetSingleElementType().Value == "2.5.4.10" && rdn.GetSingleElementValue() == "Advanced Micro Devices")
            {
                return true;
            }
        }

        return false;
    }

    private static List<X509Certificate2> Distinct(List<X509Certificate2> certs)
    {
        var result = new List<X509Certificate2>();
        foreach (var c in certs)
        {
            if (!result.Exists(r => r.RawDataMemory.Span.SequenceEqual(c.RawDataMemory.Span)))
            {
                result.Add(c);
            }
        }

        return result;
    }
}

/// <summary>Serves the certificates loaded by <see cref="SnpCertificateSource.FromPaths"/>, picking the VCEK/VLEK for each report.</summary>
internal sealed class FileSnpCertificateProvider(
    X509Certificate2? explicitKey,
    IReadOnlyList<X509Certificate2> chain,
    IReadOnlyList<X509Certificate2> candidates,
    IReadOnlyList<ReadOnlyMemory<byte>> crls) : ISnpCertificateProvider
{
    public Task<SnpCollateral> GetCollateralAsync(SnpReport report, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(report);
        var notes = new List<VerificationReason>();
        var key = explicitKey ?? Select(report, notes);
        return Task.FromResult(new SnpCollateral { EndorsementKey = key, Chain = chain, Crls = crls, Notes = notes });
    }

    /// <summary>The candidate whose kind, hwID and TCB match the report; else the only candidate of the right kind (so the verifier names the mismatch).</summary>
    private X509Certificate2? Select(SnpReport report, List<VerificationReason> notes)
    {
        var wantVlek = report.SigningKey == SnpSigningKey.Vlek;
        var ofKind = new List<(X509Certificate2 Cert, AmdCertificateExtensions Ext)>();
        foreach (var c in candidates)
        {
            AmdCertificateExtensions ext;
            try
            {
                ext = AmdCertificateExtensions.Read(c);
            }
            catch (FormatException)
            {
                continue;
            }

            if (wantVlek ? ext.CspId is not null || ext.HwId is null : ext.HwId is not null)
            {
                ofKind.Add((c, ext));
            }
        }

        foreach (var (cert, ext) in ofKind)
        {
            if (Matches(report, ext))
            {
                return cert;
            }
        }

        if (ofKind.Count == 1)
        {
            return ofKind[0].Cert;
        }

        if (ofKind.Count > 1)
        {
            notes.Add(new(ReasonCodes.CollateralMismatch, $"{ofKind.Count} {(wantVlek ? "VLEK" : "VCEK")} certificates were found in the collateral, none for this report's chip and REPORTED_TCB"));
        }

        return null;
    }

    private static bool Matches(SnpReport report, AmdCertificateExtensions ext)
    {
        var product = report.ProductFromCpuid != SnpProduct.Unknown ? report.ProductFromCpuid : ext.Product;
        if (report.ProductFromCpuid != SnpProduct.Unknown && ext.Product != SnpProduct.Unknown && ext.Product != report.ProductFromCpuid)
        {
            return false;
        }

        var tcb = report.ReportedTcb.For(product);
        if (ext.BootLoaderSpl != tcb.BootLoader || ext.TeeSpl != tcb.Tee || ext.SnpSpl != tcb.Snp || ext.MicrocodeSpl != tcb.Microcode)
        {
            return false;
        }

        if (tcb.Fmc is { } fmc && ext.FmcSpl != fmc)
        {
            return false;
        }

        if (ext.HwId is { } hw && !report.ChipIdIsZero)
        {
            var chip = report.ChipId.Span;
            return hw.Length == chip.Length ? hw.Span.SequenceEqual(chip) : chip[..hw.Length].SequenceEqual(hw.Span);
        }

        return true;
    }
}
