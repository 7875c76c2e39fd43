using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Verification.Tdx;

/// <summary>
/// Intel TDX collateral read from files and folders. Files are recognised by content, never by name: dcap-qvl
/// QuoteCollateralV3 JSON, Intel PCS TCB Info / QE Identity responses, DER or PEM CRLs, PEM or DER certificates.
/// Anything else (AMD certificates, event logs, notes) is ignored.
/// </summary>
public sealed class TdxCollateralSource : ITdxCollateralProvider
{
    /// <summary>Files larger than this are not collateral (CRLs are at most a few hundred kilobytes).</summary>
    private const long MaxFileBytes = 8 * 1024 * 1024;

    private TdxCollateralSource(TdxCollateral collateral)
    {
        Collateral = collateral;
    }

    /// <summary>Everything that was recognised.</summary>
    public TdxCollateral Collateral { get; }

    /// <summary>
    /// Reads every path (a file, or a folder searched recursively). Throws <see cref="IOException"/> (or
    /// <see cref="FileNotFoundException"/>) naming the path when an explicit path does not exist or cannot be read.
    /// </summary>
    public static TdxCollateralSource FromPaths(IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var builder = new Builder();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                IEnumerable<string> files;
                try
                {
                    files = Directory.EnumerateFiles(path, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 }).Order(StringComparer.Ordinal).ToList();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new IOException($"collateral folder '{path}' cannot be read: {ex.Message}", ex);
                }

                foreach (var file in files)
                {
                    byte[]? bytes = TryRead(file);
                    if (bytes is not null)
                    {
                        builder.Add(bytes, file);
                    }
                }
            }
            else if (File.Exists(path))
            {
                byte[] bytes;
                try
                {
                    if (new FileInfo(path).Length > MaxFileBytes)
                    {
                        throw new IOException($"collateral file '{path}' is larger than {MaxFileBytes} bytes");
                    }

                    bytes = File.ReadAllBytes(path);
                }
                catch (Exception ex) when (ex is UnauthorizedAccessException or IOException and not FileNotFoundException)
                {
                    throw new IOException($"collateral file '{path}' cannot be read: {ex.Message}", ex);
                }

                builder.Add(bytes, path);
            }
            else
            {
                throw new FileNotFoundException($"collateral path '{path}' does not exist", path);
            }
        }

        return new TdxCollateralSource(builder.Build());
    }

    /// <summary>Collateral recognised in one blob (for callers that already hold the bytes).</summary>
    public static TdxCollateral Recognise(byte[] bytes, string source)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var builder = new Builder();
        builder.Add(bytes, source);
        return builder.Build();
    }

    /// <summary>All recognised collateral, with the TCB Infos and QE Identities most likely to apply first (see <see cref="TdxCollateralRanking"/>).</summary>
    public Task<TdxCollateral> GetAsync(TdxCollateralRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var c = Collateral;
        return Task.FromResult(new TdxCollateral(
            TdxCollateralRanking.Rank(c.TcbInfos, request.Fmspc, request.At),
            TdxCollateralRanking.Rank(c.QeIdentities, null, request.At),
            c.Crls,
            c.Certificates));
    }

    private static byte[]? TryRead(string file)
    {
        try
        {
            return new FileInfo(file).Length > MaxFileBytes ? null : File.ReadAllBytes(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private sealed class Builder
    {
        private readonly List<SignedCollateralDocument> _tcbInfos = [];
        private readonly List<SignedCollateralDocument> _qeIdentities = [];
        private readonly List<byte[]> _crls = [];
        private readonly List<X509Certificate2> _certificates = [];

        public TdxCollateral Build() => new(_tcbInfos, _qeIdentities, _crls, _certificates);

        public void Add(byte[] bytes, string source)
        {
            var text = EcdsaCertificates.TryAscii(bytes);
            if (text is not null)
            {
                var trimmed = text.TrimStart('\uFEFF', ' ', '\t', '\r', '\n');
                if (trimmed.StartsWith('{'))
                {
                    AddJson(bytes, source);
                    return;
                }

                if (text.Contains("-----BEGIN ", StringComparison.Ordinal))
                {
                    AddPem(text);
                }

                return;
            }

            if (bytes.Length > 0 && bytes[0] == 0x30)
            {
                if (CrlSupport.LooksLikeCrl(bytes))
                {
                    _crls.Add(bytes);
                }
                else
                {
                    _certificates.AddRange(EcdsaCertificates.TryLoadAny(bytes));
                }
            }
        }

        private void AddPem(string text)
        {
            var rest = text.AsSpan();
            while (System.Security.Cryptography.PemEncoding.TryFind(rest, out var fields))
            {
                var label = rest[fields.Label].ToString();
                byte[]? der = null;
                try
                {
                    der = Convert.FromBase64String(rest[fields.Base64Data].ToString());
                }
                catch (FormatException)
                {
                    // not valid base64: not collateral
                }

                if (der is not null)
                {
                    if (label == "X509 CRL" && CrlSupport.LooksLikeCrl(der))
                    {
                        _crls.Add(der);
                    }
                    else if (label == "CERTIFICATE")
                    {
                        _certificates.AddRange(EcdsaCertificates.TryLoadAny(der));
                    }
                }

                rest = rest[fields.Location.End..];
            }
        }

        private void AddJson(byte[] bytes, string source)
        {
            var pcs = SignedCollateralDocument.FromPcsResponse(bytes, [], source);
            if (pcs is not null)
            {
                (pcs.Kind == TdxCollateralKind.TcbInfo ? _tcbInfos : _qeIdentities).Add(pcs);
                return;
            }

            // dcap-qvl QuoteCollateralV3: the signed JSON values are carried as strings, DER as hex, chains as PEM.
            try
            {
                using var doc = JsonDocument.Parse(bytes);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !(root.TryGetProperty("tcb_info", out _) || root.TryGetProperty("qe_identity", out _)))
                {
                    return;
                }

                var tcbChain = Chain(root, "tcb_info_issuer_chain");
                var qeChain = Chain(root, "qe_identity_issuer_chain");
                var crlChain = Chain(root, "pck_crl_issuer_chain");
                _certificates.AddRange(tcbChain);
                _certificates.AddRange(qeChain);
                _certificates.AddRange(crlChain);

                if (Str(root, "tcb_info") is { } tcb && Str(root, "tcb_info_signature") is { } tcbSig)
                {
                    _tcbInfos.Add(new SignedCollateralDocument(TdxCollateralKind.TcbInfo, Encoding.UTF8.GetBytes(tcb), SignedCollateralDocument.DecodeSignature(tcbSig), tcbChain, source + "#tcb_info"));
                }

                if (Str(root, "qe_identity") is { } qe && Str(root, "qe_identity_signature") is { } qeSig)
                {
                    _qeIdentities.Add(new SignedCollateralDocument(TdxCollateralKind.QeIdentity, Encoding.UTF8.GetBytes(qe), SignedCollateralDocument.DecodeSignature(qeSig), qeChain, source + "#qe_identity"));
                }

                foreach (var name in new[] { "pck_crl", "root_ca_crl" })
                {
                    if (Str(root, name) is { } hex && TryHex(hex) is { } der && CrlSupport.LooksLikeCrl(der))
                    {
                        _crls.Add(der);
                    }
                }
            }
            catch (JsonException)
            {
                // not JSON after all: not collateral
            }
        }

        private static string? Str(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        private static List<X509Certificate2> Chain(JsonElement e, string name) =>
            Str(e, name) is { } pem ? EcdsaCertificates.TryLoadAny(Encoding.UTF8.GetBytes(pem)) : [];

        private static byte[]? TryHex(string hex)
        {
            try
            {
                return Convert.FromHexString(hex);
            }
            catch (FormatException)
            {
                return null;
            }
        }
    }
}

/// <summary>Orders candidate TCB Infos / QE Identities: matching FMSPC first, then in date at the time, then the latest issue first.</summary>
public static class TdxCollateralRanking
{
    public static IReadOnlyList<SignedCollateralDocument> Rank(IEnumerable<SignedCollateralDocument> documents, string? fmspc, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(documents);
        return documents
            .Select(d => (Doc: d, Head: Head(d)))
            .OrderByDescending(x => fmspc is null || string.Equals(x.Head.Fmspc, fmspc, StringComparison.OrdinalIgnoreCase))
            .ThenByDescending(x => x.Head.Issue is { } i && x.Head.Next is { } n && i <= at && at < n)
            .ThenByDescending(x => x.Head.Issue ?? DateTimeOffset.MinValue)
            .Select(x => x.Doc)
            .ToList();
    }

    private static (string? Fmspc, DateTimeOffset? Issue, DateTimeOffset? Next) Head(SignedCollateralDocument d)
    {
        try
        {
            if (d.Kind == TdxCollateralKind.TcbInfo)
            {
                var t = d.ReadTcbInfo();
                return (t.Fmspc, t.IssueDate, t.NextUpdate);
            }

            var q = d.ReadQeIdentity();
            return (null, q.IssueDate, q.NextUpdate);
        }
        catch (FormatException)
        {
            return (null, null, null);
        }
    }
}
