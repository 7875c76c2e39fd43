using System.Security.Cryptography;
using System.Text;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;

namespace AttestBroker.HardwareSim.Tdx;

/// <summary>What to put into one TDX quote.</summary>
public sealed class TdxEvidenceRequest
{
    public TdxPlatform Platform { get; set; } = new();

    /// <summary>The TD's fields. TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM and TEE_TCB_SVN2 are taken from <see cref="Platform"/>.</summary>
    public TdQuoteBody Td { get; set; } = DefaultTd();

    /// <summary>4 or 5.</summary>
    public ushort QuoteVersion { get; set; } = 4;

    /// <summary>Body kind for v5 quotes (v4 is always TDX 1.0).</summary>
    public TdBodyKind BodyKind { get; set; } = TdBodyKind.Td10;

    /// <summary>Replaces <see cref="TdQuoteBody.ReportData"/> when set (up to 64 bytes, zero-padded).</summary>
    public byte[]? ReportData { get; set; }

    public ISet<SimFault> Faults { get; } = new HashSet<SimFault>();

    /// <summary>A plausible Linux TD: SEPT_VE_DISABLE set, XFAM 0x61AE7 (x87, SSE, AVX, AVX-512, PKRU...), made-up measurements.</summary>
    public static TdQuoteBody DefaultTd() => new()
    {
        TdAttributes = 0x0000_0000_1000_0000,
        Xfam = 0x0000_0000_0006_1AE7 & 0x0006_DBE7,
        MrTd = SHA384.HashData(Encoding.ASCII.GetBytes("attest-sim default MRTD")),
        Rtmrs =
        [
            SHA384.HashData(Encoding.ASCII.GetBytes("attest-sim RTMR0")),
            SHA384.HashData(Encoding.ASCII.GetBytes("attest-sim RTMR1")),
            SHA384.HashData(Encoding.ASCII.GetBytes("attest-sim RTMR2")),
            new byte[48],
        ],
    };
}

/// <summary>Builds signed TDX quotes from the simulated PKI: the quote signed by the attestation key, the QE report signed by the PCK.</summary>
public static class TdxQuoteBuilder
{
    /// <summary>The TD body exactly as it will appear in the quote (platform values merged, evidence faults applied).</summary>
    public static TdQuoteBody EffectiveBody(TdxEvidenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = request.Td.Clone();
        var p = request.Platform;
        body.TeeTcbSvn = (byte[])p.TeeTcbSvn.Clone();
        body.TeeTcbSvn2 = (byte[])p.TeeTcbSvn2.Clone();
        body.MrSeam = (byte[])p.MrSeam.Clone();
        body.MrSignerSeam = (byte[])p.MrSignerSeam.Clone();
        if (request.ReportData is { } rd)
        {
            body.ReportData = PadReportData(rd);
        }

        if (request.Faults.Contains(SimFault.Debug))
        {
            body.TdAttributes |= 1UL;
        }

        if (request.Faults.Contains(SimFault.WrongMrtd))
        {
            body.MrTd = Flip(body.MrTd);
        }

        if (request.Faults.Contains(SimFault.WrongReportData))
        {
            body.ReportData = Flip(body.ReportData);
        }

        return body;
    }

    public static byte[] Build(SimPki pki, TdxEvidenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(pki);
        ArgumentNullException.ThrowIfNull(request);
        foreach (var f in request.Faults)
        {
            if (!f.AppliesTo(TeeKind.Tdx))
            {
                throw new SimulatorException($"fault '{f.Name()}' does not apply to TDX");
            }
        }

        var kind = request.QuoteVersion == 4 ? TdBodyKind.Td10 : request.BodyKind;
        var header = new TdxQuoteHeader { Version = request.QuoteVersion };
        var body = EffectiveBody(request);
        var signed = TdxQuoteLayout.SignedRegion(header, body, kind);

        var platform = request.Platform;
        var attKey = pki.AttestationKey(platform);
        var pck = pki.IssuePck(platform);
        var attPub = attKey.EcPublicPointRaw();

        var qeReportData = new byte[64];
        var binding = SHA256.HashData([.. attPub, .. platform.QeAuthData]);
        binding.CopyTo(qeReportData, 0);
        if (request.Faults.Contains(SimFault.QeReportDataMismatch))
        {
            qeReportData[0] ^= 0x01;
        }

        var qeReport = TdxQuoteLayout.SgxReportBodyBytes(new SgxReportBody
        {
            CpuSvn = platform.QeCpuSvn,
            MiscSelect = platform.QeMiscSelect,
            Attributes = platform.QeAttributes,
            MrEnclave = platform.QeMrEnclave,
            MrSigner = platform.QeMrSigner,
            IsvProdId = platform.QeIsvProdId,
            IsvSvn = platform.QeIsvSvn,
            ReportData = qeReportData,
        });

        var chainPem = pck.CertificatePem + "\n" + pki.PckPlatformCa.CertificatePem + "\n" + pki.IntelRoot.CertificatePem + "\n";
        var quoteSignature = attKey.SignEcdsaP1363(signed);
        if (request.Faults.Contains(SimFault.BadQuoteSignature))
        {
            quoteSignature[10] ^= 0x01;
        }

        var sigData = TdxQuoteLayout.SignatureData(new TdxSignatureData
        {
            QuoteSignature = quoteSignature,
            AttestationKey = attPub,
            QeReport = qeReport,
            QeReportSignature = pck.Key.SignEcdsaP1363(qeReport),
            QeAuthData = platform.QeAuthData,
            CertificationData = [.. Encoding.ASCII.GetBytes(chainPem), 0],
        });
        var quote = TdxQuoteLayout.Assemble(signed, sigData);
        if (request.Faults.Contains(SimFault.Truncated))
        {
            // Cut inside the certification data: the declared lengths no longer fit.
            quote = quote[..(signed.Length + 4 + 0x86 + 200)];
        }

        return quote;
    }

    internal static byte[] PadReportData(byte[] rd)
    {
        if (rd.Length > 64)
        {
            throw new SimulatorException($"report data is at most 64 bytes, got {rd.Length}");
        }

        var padded = new byte[64];
        rd.CopyTo(padded, 0);
        return padded;
    }

    internal static byte[] Flip(byte[] value)
    {
        var v = (byte[])value.Clone();
        v[0] ^= 0xFF;
        return v;
    }
}
