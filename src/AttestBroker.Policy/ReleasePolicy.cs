using System.Globalization;
using System.Text.RegularExpressions;

namespace AttestBroker.Policy;

/// <summary>
/// A key's release policy (docs/policy.md is the schema for key admins). Immutable once read; built only by
/// <see cref="Parse"/>, which rejects unknown fields and malformed values with the field's path. Defaults fail
/// closed: no TEE kinds allows none; debug, simulated evidence and unchecked CRLs are refused unless allowed; TDX
/// accepts only <c>UpToDate</c>; SEV-SNP accepts only VMPL 0.
/// </summary>
public sealed partial class ReleasePolicy
{
    /// <summary>TEE wire names a policy can allow.</summary>
    public const string TeeTdx = "tdx";
    public const string TeeSevSnp = "sev-snp";

    private ReleasePolicy()
    {
    }

    /// <summary>The policy's name (letters, digits, '.', '_', '-').</summary>
    public string Name { get; private init; } = string.Empty;

    /// <summary>The document's version, a positive integer the key admin raises on every change.</summary>
    public long Version { get; private init; }

    public string? Description { get; private init; }

    /// <summary>When false, a denial is answered only as "denied"; the decision still lists the failing rules for the audit log.</summary>
    public bool Explain { get; private init; } = true;

    /// <summary>Allowed TEE kinds by wire name (<c>tdx</c>, <c>sev-snp</c>); empty allows none.</summary>
    public IReadOnlyList<string> Tee { get; private init; } = [];

    public bool AllowDebug { get; private init; }

    /// <summary>Simulated evidence is accepted only when this is true and the broker itself trusts the simulator.</summary>
    public bool AllowSimulated { get; private init; }

    /// <summary>Evidence verified without revocation checks (crl_checked false) is accepted only when this is true.</summary>
    public bool AllowUncheckedCrl { get; private init; }

    /// <summary>
    /// Claims from a Microsoft Azure Attestation token (instead of evidence the broker verified itself against the
    /// vendor roots) are accepted only when this is true: their root of trust is the attestation service.
    /// </summary>
    public bool AllowAzureAttestation { get; private init; }

    /// <summary>The oldest collateral (by issue date, at the verification time) accepted; null for no limit.</summary>
    public TimeSpan? MaxCollateralAge { get; private init; }

    /// <summary>Accepted REPORT_DATA values (64 bytes, lowercase hex); empty for no constraint.</summary>
    public IReadOnlyList<string> ReportData { get; private init; } = [];

    public RequesterPolicy? Requester { get; private init; }

    public TdxPolicy? Tdx { get; private init; }

    public SnpPolicy? Snp { get; private init; }

    /// <summary>Named CEL expressions over the claims; each must be true.</summary>
    public IReadOnlyList<PolicyExpression> Expressions { get; private init; } = [];

    /// <summary>Reads and validates a policy document, YAML or JSON (JSON when the text starts with '{').</summary>
    /// <exception cref="PolicyFormatException">The document is malformed or invalid; the message names the field.</exception>
    public static ReleasePolicy Parse(string text)
    {
        var root = new MapReader(DocumentTree.Read(text), string.Empty);
        var name = Read.String(root.Require("name"), "name", 128);
        if (!NamePattern().IsMatch(name))
        {
            throw new PolicyFormatException("name", "must be 1 to 128 letters, digits, '.', '_' or '-'");
        }

        var version = Read.Integer(root.Require("version"), "version", 1, long.MaxValue);
        var description = root.Take("description") is { } d ? Read.String(d, "description", 1024) : null;
        var explain = root.Take("explain") is not { } e || Read.Bool(e, "explain");
        var tee = root.Take("tee") is { } t
            ? Read.StringList(t, "tee", s => s is TeeTdx or TeeSevSnp, "a TEE kind (tdx or sev-snp)", allowEmpty: true)
            : [];
        var allowDebug = root.Take("allowDebug") is { } ad && Read.Bool(ad, "allowDebug");
        var allowSimulated = root.Take("allowSimulated") is { } asim && Read.Bool(asim, "allowSimulated");
        var allowUncheckedCrl = root.Take("allowUncheckedCrl") is { } ac && Read.Bool(ac, "allowUncheckedCrl");
        var allowAzureAttestation = root.Take("allowAzureAttestation") is { } aaz && Read.Bool(aaz, "allowAzureAttestation");
        var maxAge = root.Take("maxCollateralAge") is { } ma ? ReadDuration(ma, "maxCollateralAge") : (TimeSpan?)null;
        var reportData = root.Take("reportData") is { } rd ? Read.HexList(rd, "reportData", 64) : [];
        var requester = root.Take("requester") is { } rq ? RequesterPolicy.Bind(rq, "requester") : null;
        var tdx = root.Take("tdx") is { } tx ? TdxPolicy.Bind(tx, "tdx") : null;
        var snp = root.Take("snp") is { } sx ? SnpPolicy.Bind(sx, "snp") : null;
        var expressions = root.Take("expressions") is { } ex ? PolicyExpression.BindAll(ex, "expressions") : [];
        root.EnsureNoUnknownFields();

        foreach (var (kind, section, field) in new[] { (TeeTdx, (object?)tdx, "tdx"), (TeeSevSnp, snp, "snp") })
        {
            if (section is not null && !tee.Contains(kind))
            {
                throw new PolicyFormatException(field, $"is given but '{kind}' is not in tee; add it there or remove this section");
            }
        }

        if (tee.Contains(TeeTdx) && (tdx is null || !tdx.HasMeasurementConstraint))
        {
            throw new PolicyFormatException("tdx", "a policy that allows tdx must constrain at least one of mrTd, rtmr0, rtmr1, rtmr2, rtmr3");
        }

        if (tee.Contains(TeeSevSnp) && (snp is null || !snp.HasMeasurementConstraint))
        {
            throw new PolicyFormatException("snp", "a policy that allows sev-snp must constrain measurement or idKeyDigest");
        }

        return new ReleasePolicy
        {
            Name = name,
            Version = version,
            Description = description,
            Explain = explain,
            Tee = tee,
            AllowDebug = allowDebug,
            AllowSimulated = allowSimulated,
            AllowUncheckedCrl = allowUncheckedCrl,
            AllowAzureAttestation = allowAzureAttestation,
            MaxCollateralAge = maxAge,
            ReportData = reportData,
            Requester = requester,
            Tdx = tdx,
            Snp = snp,
            Expressions = expressions,
        };
    }

    /// <summary>A duration as a whole number and one unit: <c>30d</c>, <c>12h</c>, <c>90m</c>, <c>600s</c> (at most 3650 days).</summary>
    private static TimeSpan ReadDuration(DocNode node, string path)
    {
        var text = Read.String(node, path, 16);
        var m = DurationPattern().Match(text);
        if (m.Success && long.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            var seconds = m.Groups[2].Value switch
            {
                "d" => n * 86400,
                "h" => n * 3600,
                "m" => n * 60,
                _ => n,
            };
            if (n > 0 && seconds <= 3650L * 86400)
            {
                return TimeSpan.FromSeconds(seconds);
            }
        }

        throw new PolicyFormatException(path, $"'{Read.Clip(text)}' is not a duration such as 30d, 12h, 90m or 600s (positive, at most 3650 days){node.Location}");
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,128}$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex NamePattern();

    [GeneratedRegex("^([0-9]{1,9})(d|h|m|s)$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex DurationPattern();
}

/// <summary>A hex allowlist over one claim: the evidence's value must be one of <see cref="Values"/>.</summary>
/// <param name="Field">The policy field, e.g. <c>tdx.mrTd</c>.</param>
/// <param name="Claim">The claim it constrains, e.g. <c>mr_td</c>.</param>
/// <param name="Code">The code a miss is reported with.</param>
/// <param name="Values">Accepted values, lowercase hex.</param>
public sealed record HexAllowlist(string Field, string Claim, string Code, IReadOnlyList<string> Values);

/// <summary>Who may ask for the key: Kubernetes namespaces and service accounts. Defined now; the Kubernetes issue supplies the identity.</summary>
public sealed partial class RequesterPolicy
{
    private RequesterPolicy()
    {
    }

    /// <summary>Accepted namespaces; empty for no constraint.</summary>
    public IReadOnlyList<string> Namespaces { get; private init; } = [];

    /// <summary>Accepted service account names; empty for no constraint.</summary>
    public IReadOnlyList<string> ServiceAccounts { get; private init; } = [];

    /// <summary>
    /// The requester's identity must also be bound into measured launch data: SNP HOST_DATA or TDX MRCONFIGID equal to
    /// the <see cref="IdentityBinding"/> digest of its namespace and service account.
    /// </summary>
    public bool BindToLaunchData { get; private init; }

    internal static RequesterPolicy Bind(DocNode node, string path)
    {
        var r = new MapReader(node, path);
        var ns = r.Take("namespaces") is { } n
            ? Read.StringList(n, r.FieldPath("namespaces"), s => s.Length <= 63 && Label().IsMatch(s), "a Kubernetes namespace name")
            : [];
        var sa = r.Take("serviceAccounts") is { } s
            ? Read.StringList(s, r.FieldPath("serviceAccounts"), v => v.Length <= 253 && Subdomain().IsMatch(v), "a Kubernetes service account name")
            : [];
        var bind = r.Take("bindToLaunchData") is { } b && Read.Bool(b, r.FieldPath("bindToLaunchData"));
        r.EnsureNoUnknownFields();
        if (ns.Count == 0 && sa.Count == 0 && !bind)
        {
            throw new PolicyFormatException(path, "names neither namespaces nor serviceAccounts nor bindToLaunchData: true; leave it out for no constraint");
        }

        return new RequesterPolicy { Namespaces = ns, ServiceAccounts = sa, BindToLaunchData = bind };
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Label();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Subdomain();
}

/// <summary>Constraints on Intel TDX evidence.</summary>
public sealed class TdxPolicy
{
    /// <summary>Intel's TCB status names (a Revoked level is already a verification rejection).</summary>
    public static readonly IReadOnlyList<string> KnownTcbStatuses =
        ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"];

    private TdxPolicy()
    {
    }

    /// <summary>The hex allowlists given (MRTD, RTMR0-3, MRCONFIGID, MROWNER, MROWNERCONFIG, MRSEAM), in document order of the schema.</summary>
    public IReadOnlyList<HexAllowlist> Allowlists { get; private init; } = [];

    /// <summary>Accepted <c>tcb_status</c> values; <c>[UpToDate]</c> unless the policy says otherwise.</summary>
    public IReadOnlyList<string> TcbStatus { get; private init; } = ["UpToDate"];

    /// <summary>Accepted <c>qe_tcb_status</c> values; empty for no constraint.</summary>
    public IReadOnlyList<string> QeTcbStatus { get; private init; } = [];

    /// <summary>Advisory IDs that may appear in <c>advisory_ids</c>; any other advisory denies. Empty accepts none.</summary>
    public IReadOnlyList<string> AllowedAdvisories { get; private init; } = [];

    /// <summary>Minimum TEE_TCB_SVN (16 bytes, lowercase hex), compared byte by byte; null for no constraint.</summary>
    public string? MinTeeTcbSvn { get; private init; }

    internal bool HasMeasurementConstraint => Allowlists.Any(a => a.Claim is "mr_td" or "rtmr0" or "rtmr1" or "rtmr2" or "rtmr3");

    internal static readonly (string Field, string Claim)[] MeasurementFields =
    [
        ("mrTd", "mr_td"), ("rtmr0", "rtmr0"), ("rtmr1", "rtmr1"), ("rtmr2", "rtmr2"), ("rtmr3", "rtmr3"),
        ("mrConfigId", "mr_config_id"), ("mrOwner", "mr_owner"), ("mrOwnerConfig", "mr_owner_config"), ("mrSeam", "mr_seam"),
    ];

    internal static TdxPolicy Bind(DocNode node, string path)
    {
        var r = new MapReader(node, path);
        var lists = new List<HexAllowlist>();
        foreach (var (field, claim) in MeasurementFields)
        {
            if (r.Take(field) is { } n)
            {
                var p = r.FieldPath(field);
                lists.Add(new HexAllowlist(p, claim, PolicyCodes.MeasurementMismatch, Read.HexList(n, p, 48)));
            }
        }

        var tcb = r.Take("tcbStatus") is { } ts
            ? Read.StringList(ts, r.FieldPath("tcbStatus"), s => KnownTcbStatuses.Contains(s), "an Intel TCB status (" + string.Join(", ", KnownTcbStatuses) + ")")
            : (IReadOnlyList<string>)["UpToDate"];
        var qe = r.Take("qeTcbStatus") is { } qs
            ? Read.StringList(qs, r.FieldPath("qeTcbStatus"), s => KnownTcbStatuses.Contains(s), "an Intel TCB status (" + string.Join(", ", KnownTcbStatuses) + ")")
            : [];
        var adv = r.Take("allowedAdvisories") is { } a
            ? Read.StringList(a, r.FieldPath("allowedAdvisories"), IsAdvisoryId, "an advisory ID such as INTEL-SA-00837", allowEmpty: true)
            : [];
        var svn = r.Take("minTeeTcbSvn") is { } m ? Read.Hex(m, r.FieldPath("minTeeTcbSvn"), 16) : null;
        r.EnsureNoUnknownFields();
        return new TdxPolicy { Allowlists = lists, TcbStatus = tcb, QeTcbStatus = qe, AllowedAdvisories = adv, MinTeeTcbSvn = svn };
    }

    private static bool IsAdvisoryId(string s) =>
        s.Length is > 0 and <= 64 && !s.AsSpan().ContainsAnyExcept("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.");
}

/// <summary>Constraints on AMD SEV-SNP evidence.</summary>
public sealed class SnpPolicy
{
    /// <summary>The components of an SNP TCB version a minimum can name (fmc exists on Turin only).</summary>
    public static readonly IReadOnlyList<string> TcbComponents = ["bootloader", "tee", "snp", "microcode", "fmc"];

    private SnpPolicy()
    {
    }

    /// <summary>The hex allowlists given (measurement, host_data, family and image id, id and author key digests).</summary>
    public IReadOnlyList<HexAllowlist> Allowlists { get; private init; } = [];

    /// <summary>Accepted VMPL values; <c>[0]</c> unless the policy says otherwise.</summary>
    public IReadOnlyList<int> Vmpl { get; private init; } = [0];

    /// <summary>Per-claim TCB minimums: claim (<c>reported_tcb</c>, <c>committed_tcb</c>, <c>launch_tcb</c>) to component to minimum SVN.</summary>
    public IReadOnlyList<TcbMinimum> MinTcb { get; private init; } = [];

    internal bool HasMeasurementConstraint => Allowlists.Any(a => a.Claim is "measurement" or "id_key_digest");

    internal static readonly (string Field, string Claim, int Bytes, string Code)[] HexFields =
    [
        ("measurement", "measurement", 48, PolicyCodes.MeasurementMismatch),
        ("hostData", "host_data", 32, PolicyCodes.HostDataMismatch),
        ("familyId", "family_id", 16, PolicyCodes.FamilyIdMismatch),
        ("imageId", "image_id", 16, PolicyCodes.ImageIdMismatch),
        ("idKeyDigest", "id_key_digest", 48, PolicyCodes.IdKeyMismatch),
        ("authorKeyDigest", "author_key_digest", 48, PolicyCodes.AuthorKeyMismatch),
    ];

    internal static SnpPolicy Bind(DocNode node, string path)
    {
        var r = new MapReader(node, path);
        var lists = new List<HexAllowlist>();
        foreach (var (field, claim, bytes, code) in HexFields)
        {
            if (r.Take(field) is { } n)
            {
                var p = r.FieldPath(field);
                lists.Add(new HexAllowlist(p, claim, code, Read.HexList(n, p, bytes)));
            }
        }

        IReadOnlyList<int> vmpl = [0];
        if (r.Take("vmpl") is { } v)
        {
            var p = r.FieldPath("vmpl");
            var items = Read.List(v, p, 4);
            if (items.Count == 0)
            {
                throw new PolicyFormatException(p, "an empty list allows nothing; leave the field out for the default [0]" + v.Location);
            }

            var values = new List<int>();
            for (var i = 0; i < items.Count; i++)
            {
                var x = (int)Read.Integer(items[i], PolicyPaths.Index(p, i), 0, 3);
                if (values.Contains(x))
                {
                    throw new PolicyFormatException(PolicyPaths.Index(p, i), "repeats an earlier entry" + items[i].Location);
                }

                values.Add(x);
            }

            vmpl = values;
        }

        var mins = new List<TcbMinimum>();
        foreach (var (field, claim) in new[] { ("minReportedTcb", "reported_tcb"), ("minCommittedTcb", "committed_tcb"), ("minLaunchTcb", "launch_tcb") })
        {
            if (r.Take(field) is not { } n)
            {
                continue;
            }

            var p = r.FieldPath(field);
            var m = new MapReader(n, p);
            var any = false;
            foreach (var component in TcbComponents)
            {
                if (m.Take(component) is { } c)
                {
                    var cp = m.FieldPath(component);
                    mins.Add(new TcbMinimum(cp, claim, component, (int)Read.Integer(c, cp, 0, 255)));
                    any = true;
                }
            }

            m.EnsureNoUnknownFields();
            if (!any)
            {
                throw new PolicyFormatException(p, "names no component; give at least one of " + string.Join(", ", TcbComponents) + n.Location);
            }
        }

        r.EnsureNoUnknownFields();
        return new SnpPolicy { Allowlists = lists, Vmpl = vmpl, MinTcb = mins };
    }
}

/// <summary>A minimum SVN for one component of an SNP TCB claim.</summary>
/// <param name="Field">The policy field, e.g. <c>snp.minReportedTcb.snp</c>.</param>
/// <param name="Claim">The claim, e.g. <c>reported_tcb</c>.</param>
/// <param name="Component">bootloader, tee, snp, microcode or fmc.</param>
/// <param name="Minimum">The lowest accepted SVN, 0 to 255.</param>
public sealed record TcbMinimum(string Field, string Claim, string Component, int Minimum);
