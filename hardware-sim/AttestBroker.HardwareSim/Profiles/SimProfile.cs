using System.Globalization;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace AttestBroker.HardwareSim.Profiles;

/// <summary>
/// A named simulated platform with its workload: a TDX host and TD, and/or an SEV-SNP host and guest, plus how the
/// evidence is made (quote/report version, signing key). Loaded from YAML (<c>--profile FILE</c>); every field is optional
/// and defaults to the simulator's default platform. docs/simulator.md shows the schema.
/// </summary>
public sealed class SimProfile
{
    public string Name { get; set; } = "default";

    public TdxPlatform TdxPlatform { get; set; } = new();

    public TdQuoteBody Td { get; set; } = TdxEvidenceRequest.DefaultTd();

    public ushort QuoteVersion { get; set; } = 4;

    public TdBodyKind TdBodyKind { get; set; } = TdBodyKind.Td10;

    public SnpPlatform SnpPlatform { get; set; } = new();

    public SnpGuest SnpGuest { get; set; } = new();

    public uint SnpReportVersion { get; set; } = 3;

    public SnpSigningKey SnpSigningKey { get; set; } = SnpSigningKey.Vcek;

    public static SimProfile Default() => new();

    public static SimProfile LoadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (IOException ex)
        {
            throw new SimulatorException($"cannot read profile {path}: {ex.Message}", ex);
        }

        return Parse(text);
    }

    public static SimProfile Parse(string yaml)
    {
        ProfileDocument? doc;
        try
        {
            var deserializer = new DeserializerBuilder().WithNamingConvention(UnderscoredNamingConvention.Instance).Build();
            doc = deserializer.Deserialize<ProfileDocument>(yaml);
        }
        catch (YamlException ex)
        {
            var what = ex.InnerException is SimulatorException inner ? inner.Message : "not valid YAML for the profile schema (see 'attest-sim profile')";
            throw new SimulatorException($"profile line {ex.Start.Line}, column {ex.Start.Column}: {what}", ex);
        }

        return doc is null ? new SimProfile() : doc.ToProfile();
    }

    /// <summary>The profile as YAML (every field written), for <c>attest-sim profile</c>.</summary>
    public string ToYaml()
    {
        var serializer = new SerializerBuilder().WithNamingConvention(UnderscoredNamingConvention.Instance).Build();
        return serializer.Serialize(ProfileDocument.From(this));
    }
}

#pragma warning disable CA1812 // instantiated by YamlDotNet
#pragma warning disable CA1819 // arrays in a DTO
#pragma warning disable CA2227 // settable collections in a DTO
internal sealed class ProfileDocument
{
    public string? Name { get; set; }

    public TdxSection? Tdx { get; set; }

    public SnpSection? Snp { get; set; }

    public static ProfileDocument From(SimProfile p)
    {
        var t = p.TdxPlatform;
        var td = p.Td;
        var s = p.SnpPlatform;
        var g = p.SnpGuest;
        return new ProfileDocument
        {
            Name = p.Name,
            Tdx = new TdxSection
            {
                QuoteVersion = p.QuoteVersion,
                TdVersion = p.TdBodyKind == TdBodyKind.Td15 ? "1.5" : "1.0",
                Fmspc = Hex(t.Fmspc),
                PceId = Hex(t.PceId),
                Ppid = Hex(t.Ppid),
                SgxTcbComponents = [.. t.SgxTcbComponents.Select(b => (int)b)],
                PceSvn = t.PceSvn,
                CpuSvn = Hex(t.CpuSvn),
                TeeTcbSvn = Hex(t.TeeTcbSvn),
                TeeTcbSvn2 = Hex(t.TeeTcbSvn2),
                MrSeam = Hex(t.MrSeam),
                MrSignerSeam = Hex(t.MrSignerSeam),
                QeIsvSvn = t.QeIsvSvn,
                QeMrSigner = Hex(t.QeMrSigner),
                Td = new TdSection
                {
                    MrTd = Hex(td.MrTd),
                    MrConfigId = Hex(td.MrConfigId),
                    MrOwner = Hex(td.MrOwner),
                    MrOwnerConfig = Hex(td.MrOwnerConfig),
                    Rtmr0 = Hex(td.Rtmrs[0]),
                    Rtmr1 = Hex(td.Rtmrs[1]),
                    Rtmr2 = Hex(td.Rtmrs[2]),
                    Rtmr3 = Hex(td.Rtmrs[3]),
                    TdAttributes = "0x" + td.TdAttributes.ToString("x16", CultureInfo.InvariantCulture),
                    Xfam = "0x" + td.Xfam.ToString("x16", CultureInfo.InvariantCulture),
                    MrServiceTd = Hex(td.MrServiceTd),
                    ReportData = Hex(td.ReportData),
                },
            },
            Snp = new SnpSection
            {
                Product = s.Product.CliName(),
                ReportVersion = p.SnpReportVersion,
                SigningKey = p.SnpSigningKey == SnpSigningKey.Vlek ? "vlek" : "vcek",
                ChipId = Hex(s.ChipId),
                ReportedTcb = TcbSection.From(s.ReportedTcb),
                Firmware = string.Create(CultureInfo.InvariantCulture, $"{s.FirmwareMajor}.{s.FirmwareMinor}.{s.FirmwareBuild}"),
                PlatformInfo = "0x" + s.PlatformInfo.ToString("x", CultureInfo.InvariantCulture),
                CspId = s.CspId,
                Guest = new GuestSection
                {
                    Policy = "0x" + g.Policy.ToString("x", CultureInfo.InvariantCulture),
                    Vmpl = g.Vmpl,
                    GuestSvn = g.GuestSvn,
                    Measurement = Hex(g.Measurement),
                    HostData = Hex(g.HostData),
                    FamilyId = Hex(g.FamilyId),
                    ImageId = Hex(g.ImageId),
                    IdKeyDigest = Hex(g.IdKeyDigest),
                    AuthorKeyDigest = Hex(g.AuthorKeyDigest),
                    ReportData = Hex(g.ReportData),
                },
            },
        };
    }

    public SimProfile ToProfile()
    {
        var p = new SimProfile { Name = Name ?? "default" };
        if (Tdx is { } t)
        {
            var pl = p.TdxPlatform;
            pl.Name = p.Name;
            if (t.QuoteVersion is { } qv)
            {
                p.QuoteVersion = qv is 4 or 5 ? qv : throw new SimulatorException($"tdx.quote_version must be 4 or 5, got {qv}");
                if (qv == 5)
                {
                    p.TdBodyKind = TdBodyKind.Td15;
                }
            }

            if (t.TdVersion is { } tv)
            {
                p.TdBodyKind = tv switch
                {
                    "1.0" => TdBodyKind.Td10,
                    "1.5" => TdBodyKind.Td15,
                    _ => throw new SimulatorException($"tdx.td_version must be \"1.0\" or \"1.5\", got {tv}"),
                };
            }

            Set(t.Fmspc, 6, "tdx.fmspc", v => pl.Fmspc = v);
            Set(t.PceId, 2, "tdx.pce_id", v => pl.PceId = v);
            Set(t.Ppid, 16, "tdx.ppid", v => pl.Ppid = v);
            if (t.SgxTcbComponents is { } comps)
            {
                if (comps.Count != 16 || comps.Any(c => c is < 0 or > 255))
                {
                    throw new SimulatorException("tdx.sgx_tcb_components must be 16 numbers 0..255");
                }

                pl.SgxTcbComponents = [.. comps.Select(c => (byte)c)];
            }

            if (t.PceSvn is { } pce)
            {
                pl.PceSvn = pce;
            }

            Set(t.CpuSvn, 16, "tdx.cpu_svn", v => pl.CpuSvn = v);
            Set(t.TeeTcbSvn, 16, "tdx.tee_tcb_svn", v => pl.TeeTcbSvn = v);
            Set(t.TeeTcbSvn2, 16, "tdx.tee_tcb_svn2", v => pl.TeeTcbSvn2 = v);
            Set(t.MrSeam, 48, "tdx.mr_seam", v => pl.MrSeam = v);
            Set(t.MrSignerSeam, 48, "tdx.mr_signer_seam", v => pl.MrSignerSeam = v);
            Set(t.QeMrSigner, 32, "tdx.qe_mr_signer", v => pl.QeMrSigner = v);
            if (t.QeIsvSvn is { } qe)
            {
                pl.QeIsvSvn = qe;
            }

            if (t.Td is { } td)
            {
                var b = p.Td;
                Set(td.MrTd, 48, "tdx.td.mr_td", v => b.MrTd = v);
                Set(td.MrConfigId, 48, "tdx.td.mr_config_id", v => b.MrConfigId = v);
                Set(td.MrOwner, 48, "tdx.td.mr_owner", v => b.MrOwner = v);
                Set(td.MrOwnerConfig, 48, "tdx.td.mr_owner_config", v => b.MrOwnerConfig = v);
                Set(td.Rtmr0, 48, "tdx.td.rtmr0", v => b.Rtmrs[0] = v);
                Set(td.Rtmr1, 48, "tdx.td.rtmr1", v => b.Rtmrs[1] = v);
                Set(td.Rtmr2, 48, "tdx.td.rtmr2", v => b.Rtmrs[2] = v);
                Set(td.Rtmr3, 48, "tdx.td.rtmr3", v => b.Rtmrs[3] = v);
                Set(td.MrServiceTd, 48, "tdx.td.mr_service_td", v => b.MrServiceTd = v);
                SetPadded(td.ReportData, 64, "tdx.td.report_data", v => b.ReportData = v);
                if (td.TdAttributes is { } ta)
                {
                    b.TdAttributes = ParseU64(ta, "tdx.td.td_attributes");
                }

                if (td.Xfam is { } xf)
                {
                    b.Xfam = ParseU64(xf, "tdx.td.xfam");
                }
            }
        }

        if (Snp is { } s)
        {
            var pl = p.SnpPlatform;
            pl.Name = p.Name;
            if (s.Product is { } prod)
            {
                pl.Product = AmdProducts.Parse(prod);
                pl.ChipId = SnpPlatform.DefaultChipId(pl.Product);
            }

            if (s.ReportVersion is { } rv)
            {
                p.SnpReportVersion = rv is >= 2 and <= 5 ? rv : throw new SimulatorException($"snp.report_version must be 2..5, got {rv}");
            }

            if (s.SigningKey is { } sk)
            {
                p.SnpSigningKey = ParseSigningKey(sk);
            }

            SetPadded(s.ChipId, 64, "snp.chip_id", v => pl.ChipId = v);
            if (s.ReportedTcb is { } tcb)
            {
                pl.ReportedTcb = tcb.ToTcb("snp.reported_tcb");
            }

            if (s.Firmware is { } fw)
            {
                var parts = fw.Split('.');
                if (parts.Length != 3 || !byte.TryParse(parts[0], CultureInfo.InvariantCulture, out var ma) || !byte.TryParse(parts[1], CultureInfo.InvariantCulture, out var mi) || !byte.TryParse(parts[2], CultureInfo.InvariantCulture, out var bu))
                {
                    throw new SimulatorException($"snp.firmware must be MAJOR.MINOR.BUILD (0..255 each), got {fw}");
                }

                (pl.FirmwareMajor, pl.FirmwareMinor, pl.FirmwareBuild) = (ma, mi, bu);
            }

            if (s.PlatformInfo is { } pi)
            {
                pl.PlatformInfo = ParseU64(pi, "snp.platform_info");
            }

            if (s.CspId is { } csp)
            {
                pl.CspId = csp;
            }

            if (s.Guest is { } g)
            {
                var gu = p.SnpGuest;
                if (g.Policy is { } pol)
                {
                    gu.Policy = ParseU64(pol, "snp.guest.policy");
                }

                if (g.Vmpl is { } vmpl)
                {
                    gu.Vmpl = vmpl <= 3 ? vmpl : throw new SimulatorException("snp.guest.vmpl must be 0..3");
                }

                if (g.GuestSvn is { } svn)
                {
                    gu.GuestSvn = svn;
                }

                Set(g.Measurement, 48, "snp.guest.measurement", v => gu.Measurement = v);
                Set(g.HostData, 32, "snp.guest.host_data", v => gu.HostData = v);
                Set(g.FamilyId, 16, "snp.guest.family_id", v => gu.FamilyId = v);
                Set(g.ImageId, 16, "snp.guest.image_id", v => gu.ImageId = v);
                Set(g.IdKeyDigest, 48, "snp.guest.id_key_digest", v => gu.IdKeyDigest = v);
                Set(g.AuthorKeyDigest, 48, "snp.guest.author_key_digest", v => gu.AuthorKeyDigest = v);
                SetPadded(g.ReportData, 64, "snp.guest.report_data", v => gu.ReportData = v);
            }
        }

        return p;
    }

    internal static SnpSigningKey ParseSigningKey(string s) => s.Trim().ToLowerInvariant() switch
    {
        "vcek" => SnpSigningKey.Vcek,
        "vlek" => SnpSigningKey.Vlek,
        _ => throw new SimulatorException($"signing key must be vcek or vlek, got {s}"),
    };

    internal static ulong ParseU64(string s, string field)
    {
        var t = s.Trim();
        var ok = t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(t.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var v)
            : ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        return ok ? v : throw new SimulatorException($"{field} must be a number (decimal or 0x hex), got '{s}'");
    }

    private static string Hex(byte[] b) => Convert.ToHexStringLower(b);

    private static byte[] ParseHex(string s, string field)
    {
        try
        {
            return Convert.FromHexString(s.Trim());
        }
        catch (FormatException ex)
        {
            throw new SimulatorException($"{field} is not hex", ex);
        }
    }

    private static void Set(string? hex, int size, string field, Action<byte[]> set)
    {
        if (hex is null)
        {
            return;
        }

        var v = ParseHex(hex, field);
        set(v.Length == size ? v : throw new SimulatorException($"{field} must be {size} bytes ({size * 2} hex digits), got {v.Length}"));
    }

    private static void SetPadded(string? hex, int size, string field, Action<byte[]> set)
    {
        if (hex is null)
        {
            return;
        }

        var v = ParseHex(hex, field);
        if (v.Length > size)
        {
            throw new SimulatorException($"{field} must be at most {size} bytes, got {v.Length}");
        }

        var padded = new byte[size];
        v.CopyTo(padded, 0);
        set(padded);
    }
}

internal sealed class TdxSection
{
    public ushort? QuoteVersion { get; set; }

    public string? TdVersion { get; set; }

    public string? Fmspc { get; set; }

    public string? PceId { get; set; }

    public string? Ppid { get; set; }

    public List<int>? SgxTcbComponents { get; set; }

    public ushort? PceSvn { get; set; }

    public string? CpuSvn { get; set; }

    public string? TeeTcbSvn { get; set; }

    public string? TeeTcbSvn2 { get; set; }

    public string? MrSeam { get; set; }

    public string? MrSignerSeam { get; set; }

    public ushort? QeIsvSvn { get; set; }

    public string? QeMrSigner { get; set; }

    public TdSection? Td { get; set; }
}

internal sealed class TdSection
{
    public string? MrTd { get; set; }

    public string? MrConfigId { get; set; }

    public string? MrOwner { get; set; }

    public string? MrOwnerConfig { get; set; }

    public string? Rtmr0 { get; set; }

    public string? Rtmr1 { get; set; }

    public string? Rtmr2 { get; set; }

    public string? Rtmr3 { get; set; }

    public string? TdAttributes { get; set; }

    public string? Xfam { get; set; }

    public string? MrServiceTd { get; set; }

    public string? ReportData { get; set; }
}

internal sealed class SnpSection
{
    public string? Product { get; set; }

    public uint? ReportVersion { get; set; }

    public string? SigningKey { get; set; }

    public string? ChipId { get; set; }

    public TcbSection? ReportedTcb { get; set; }

    public string? Firmware { get; set; }

    public string? PlatformInfo { get; set; }

    public string? CspId { get; set; }

    public GuestSection? Guest { get; set; }
}

internal sealed class TcbSection
{
    public int? Bootloader { get; set; }

    public int? Tee { get; set; }

    public int? Snp { get; set; }

    public int? Microcode { get; set; }

    public int? Fmc { get; set; }

    public static TcbSection From(SnpTcb t) => new() { Bootloader = t.Bootloader, Tee = t.Tee, Snp = t.Snp, Microcode = t.Microcode, Fmc = t.Fmc };

    public SnpTcb ToTcb(string field) => new(B(Bootloader, "bootloader"), B(Tee, "tee"), B(Snp, "snp"), B(Microcode, "microcode"), B(Fmc, "fmc"));

    private static byte B(int? v, string name) => v switch
    {
        null => 0,
        >= 0 and <= 255 => (byte)v.Value,
        _ => throw new SimulatorException($"TCB component {name} must be 0..255"),
    };
}

internal sealed class GuestSection
{
    public string? Policy { get; set; }

    public uint? Vmpl { get; set; }

    public uint? GuestSvn { get; set; }

    public string? Measurement { get; set; }

    public string? HostData { get; set; }

    public string? FamilyId { get; set; }

    public string? ImageId { get; set; }

    public string? IdKeyDigest { get; set; }

    public string? AuthorKeyDigest { get; set; }

    public string? ReportData { get; set; }
}
#pragma warning restore CA2227
#pragma warning restore CA1819
#pragma warning restore CA1812
