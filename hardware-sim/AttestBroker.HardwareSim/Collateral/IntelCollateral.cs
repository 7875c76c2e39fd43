using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Collateral;

/// <summary>The TCB status a TCB Info level can carry (Intel PCS v4).</summary>
public enum TcbStatus
{
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked,
}

/// <summary>A signed Intel PCS JSON response: the exact body bytes, and the signed member's exact bytes inside it.</summary>
public sealed record SignedJson(byte[] Body, byte[] SignedMember);

/// <summary>
/// Intel collateral in PCS v4 formats, signed by the simulated TCB Signing key: TDX TCB Info v3 (with TDX module
/// identities), TD QE Identity v2, and the PCK and Root CA CRLs (DER). The signed JSON member is written once and its
/// exact bytes are signed (ECDSA P-256, r ‖ s hex), as Intel's PCS does.
/// </summary>
public static class IntelCollateral
{
    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false };

    /// <summary>TDX TCB Info v3 for a platform. The level that matches the platform carries <paramref name="platformStatus"/>;
    /// when that is not UpToDate, a higher UpToDate level precedes it (the platform does not reach it).</summary>
    public static SignedJson TdxTcbInfo(TdxPlatform platform, TcbStatus platformStatus, DateTimeOffset issueDate, DateTimeOffset nextUpdate, IssuedCertificate signer)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(signer);
        var member = Json(w =>
        {
            w.WriteStartObject();
            w.WriteString("id", "TDX");
            w.WriteNumber("version", 3);
            w.WriteString("issueDate", Time(issueDate));
            w.WriteString("nextUpdate", Time(nextUpdate));
            w.WriteString("fmspc", Convert.ToHexString(platform.Fmspc));
            w.WriteString("pceId", Convert.ToHexString(platform.PceId));
            w.WriteNumber("tcbType", 0);
            w.WriteNumber("tcbEvaluationDataNumber", 17);
            w.WriteStartObject("tdxModule");
            w.WriteString("mrsigner", Convert.ToHexString(platform.MrSignerSeam));
            w.WriteString("attributes", "0000000000000000");
            w.WriteString("attributesMask", "FFFFFFFFFFFFFFFF");
            w.WriteEndObject();
            w.WriteStartArray("tdxModuleIdentities");
            w.WriteStartObject();
            w.WriteString("id", "TDX_" + platform.TeeTcbSvn[1].ToString("X2", CultureInfo.InvariantCulture));
            w.WriteString("mrsigner", Convert.ToHexString(platform.MrSignerSeam));
            w.WriteString("attributes", "0000000000000000");
            w.WriteString("attributesMask", "FFFFFFFFFFFFFFFF");
            w.WriteStartArray("tcbLevels");
            ModuleLevel(w, platform.TeeTcbSvn[0], "2025-06-11T00:00:00Z", TcbStatus.UpToDate);
            if (platform.TeeTcbSvn[0] > 0)
            {
                ModuleLevel(w, 0, "2023-08-09T00:00:00Z", TcbStatus.OutOfDate);
            }

            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();

            w.WriteStartArray("tcbLevels");
            if (platformStatus != TcbStatus.UpToDate)
            {
                var higherSgx = platform.SgxTcbComponents.Select(s => (byte)Math.Min(255, s + 1)).ToArray();
                var higherTdx = (byte[])platform.TeeTcbSvn.Clone();
                higherTdx[2] = (byte)Math.Min(255, higherTdx[2] + 1);
                Level(w, higherSgx, (ushort)Math.Min(ushort.MaxValue, platform.PceSvn + 1), higherTdx, "2025-06-11T00:00:00Z", TcbStatus.UpToDate);
            }

            Level(w, platform.SgxTcbComponents, platform.PceSvn, platform.TeeTcbSvn, "2025-02-12T00:00:00Z", platformStatus);
            Level(w, new byte[16], 0, new byte[16], "2018-01-04T00:00:00Z", TcbStatus.OutOfDate);
            w.WriteEndArray();
            w.WriteEndObject();
        });
        return Wrap("tcbInfo", member, signer.Key);
    }

    /// <summary>TD QE Identity v2 matching the platform's quoting enclave.</summary>
    public static SignedJson TdQeIdentity(TdxPlatform platform, DateTimeOffset issueDate, DateTimeOffset nextUpdate, IssuedCertificate signer)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(signer);
        var attributesMask = Convert.FromHexString("FBFFFFFFFFFFFFFF0000000000000000");
        var attributes = platform.QeAttributes.Zip(attributesMask, (a, m) => (byte)(a & m)).ToArray();
        var member = Json(w =>
        {
            w.WriteStartObject();
            w.WriteString("id", "TD_QE");
            w.WriteNumber("version", 2);
            w.WriteString("issueDate", Time(issueDate));
            w.WriteString("nextUpdate", Time(nextUpdate));
            w.WriteNumber("tcbEvaluationDataNumber", 17);
            w.WriteString("miscselect", platform.QeMiscSelect.ToString("X8", CultureInfo.InvariantCulture));
            w.WriteString("miscselectMask", "FFFFFFFF");
            w.WriteString("attributes", Convert.ToHexString(attributes));
            w.WriteString("attributesMask", Convert.ToHexString(attributesMask));
            w.WriteString("mrsigner", Convert.ToHexString(platform.QeMrSigner));
            w.WriteNumber("isvprodid", platform.QeIsvProdId);
            w.WriteStartArray("tcbLevels");
            ModuleLevel(w, platform.QeIsvSvn, "2025-06-11T00:00:00Z", TcbStatus.UpToDate);
            if (platform.QeIsvSvn > 0)
            {
                ModuleLevel(w, 0, "2018-01-04T00:00:00Z", TcbStatus.OutOfDate);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
        return Wrap("enclaveIdentity", member, signer.Key);
    }

    /// <summary>A DER CRL signed by <paramref name="issuer"/> listing <paramref name="revoked"/>.</summary>
    public static byte[] Crl(IssuedCertificate issuer, IEnumerable<X509Certificate2> revoked, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate, BigInteger crlNumber)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        ArgumentNullException.ThrowIfNull(revoked);
        var builder = new CertificateRevocationListBuilder();
        foreach (var cert in revoked)
        {
            builder.AddEntry(cert, thisUpdate, X509RevocationReason.KeyCompromise);
        }

        var ski = issuer.Certificate.Extensions.OfType<X509SubjectKeyIdentifierExtension>().First();
        var hash = issuer.Key.Kind == Crypto.SimKeyKind.Rsa ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256;
        return builder.Build(issuer.Certificate.SubjectName, issuer.Key.SignatureGenerator(), crlNumber, nextUpdate, hash, X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(ski), thisUpdate);
    }

    /// <summary>The PEM issuer chain as PCS sends it (signing certificate first, root last).</summary>
    public static string IssuerChainPem(params IssuedCertificate[] chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        var sb = new StringBuilder();
        foreach (var c in chain)
        {
            sb.Append(c.CertificatePem).Append('\n');
        }

        return sb.ToString();
    }

    private static SignedJson Wrap(string memberName, byte[] member, Crypto.SimKey key)
    {
        var signature = Convert.ToHexStringLower(key.SignEcdsaP1363(member));
        var prefix = Encoding.UTF8.GetBytes("{\"" + memberName + "\":");
        var suffix = Encoding.UTF8.GetBytes(",\"signature\":\"" + signature + "\"}");
        return new SignedJson([.. prefix, .. member, .. suffix], member);
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, WriterOptions))
        {
            write(w);
        }

        return ms.ToArray();
    }

    private static void ModuleLevel(Utf8JsonWriter w, int isvsvn, string date, TcbStatus status)
    {
        w.WriteStartObject();
        w.WriteStartObject("tcb");
        w.WriteNumber("isvsvn", isvsvn);
        w.WriteEndObject();
        w.WriteString("tcbDate", date);
        w.WriteString("tcbStatus", status.ToString());
        w.WriteEndObject();
    }

    private static void Level(Utf8JsonWriter w, byte[] sgx, ushort pcesvn, byte[] tdx, string date, TcbStatus status)
    {
        w.WriteStartObject();
        w.WriteStartObject("tcb");
        w.WriteStartArray("sgxtcbcomponents");
        foreach (var s in sgx)
        {
            w.WriteStartObject();
            w.WriteNumber("svn", s);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteNumber("pcesvn", pcesvn);
        w.WriteStartArray("tdxtcbcomponents");
        for (var i = 0; i < 16; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("svn", tdx[i]);
            if (i < 2)
            {
                w.WriteString("category", "OS/VMM");
                w.WriteString("type", "TDX Module");
            }
            else if (i == 2)
            {
                w.WriteString("category", "OS/VMM");
                w.WriteString("type", "TDX Late Microcode Update");
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteString("tcbDate", date);
        w.WriteString("tcbStatus", status.ToString());
        if (status != TcbStatus.UpToDate)
        {
            w.WriteStartArray("advisoryIDs");
            w.WriteStringValue("INTEL-SA-00000");
            w.WriteEndArray();
        }

        w.WriteEndObject();
    }

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
