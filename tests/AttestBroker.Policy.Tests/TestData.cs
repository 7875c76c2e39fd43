using System.Text.Json.Nodes;

namespace AttestBroker.Policy.Tests;

/// <summary>Claims and policies that grant, as the starting point that each test changes in one place.</summary>
internal static class TestData
{
    public static readonly DateTimeOffset At = new(2026, 3, 20, 10, 41, 14, TimeSpan.Zero);

    public static string Hex(int bytes, byte fill) => Convert.ToHexStringLower(Enumerable.Repeat(fill, bytes).ToArray());

    public static readonly string MrTd = Hex(48, 0x11);
    public static readonly string OtherMrTd = Hex(48, 0x12);
    public static readonly string Rtmr0 = Hex(48, 0x20);
    public static readonly string Rtmr1 = Hex(48, 0x21);
    public static readonly string Rtmr2 = Hex(48, 0x22);
    public static readonly string Rtmr3 = Hex(48, 0x23);
    public static readonly string MrConfigId = Hex(48, 0x30);
    public static readonly string MrOwner = Hex(48, 0x31);
    public static readonly string MrOwnerConfig = Hex(48, 0x32);
    public static readonly string MrSeam = Hex(48, 0x40);
    public static readonly string ReportData = Hex(64, 0x55);
    public static readonly string TeeTcbSvn = "0b010300000000000000000000000000";

    public static readonly string Measurement = Hex(48, 0xa1);
    public static readonly string HostData = Hex(32, 0xa2);
    public static readonly string FamilyId = Hex(16, 0xa3);
    public static readonly string ImageId = Hex(16, 0xa4);
    public static readonly string IdKey = Hex(48, 0xa5);
    public static readonly string AuthorKey = Hex(48, 0xa6);

    public static JsonObject TdxClaims() => new()
    {
        ["quote_version"] = 4,
        ["tee_tcb_svn"] = TeeTcbSvn,
        ["mr_seam"] = MrSeam,
        ["mr_td"] = MrTd,
        ["mr_config_id"] = MrConfigId,
        ["mr_owner"] = MrOwner,
        ["mr_owner_config"] = MrOwnerConfig,
        ["rtmr0"] = Rtmr0,
        ["rtmr1"] = Rtmr1,
        ["rtmr2"] = Rtmr2,
        ["rtmr3"] = Rtmr3,
        ["report_data"] = ReportData,
        ["debug"] = false,
        ["tcb_status"] = "UpToDate",
        ["advisory_ids"] = new JsonArray(),
        ["qe_tcb_status"] = "UpToDate",
    };

    public static JsonObject SnpClaims() => new()
    {
        ["report_version"] = 3,
        ["guest_svn"] = 1,
        ["vmpl"] = 0,
        ["policy"] = 0x30000UL,
        ["debug"] = false,
        ["family_id"] = FamilyId,
        ["image_id"] = ImageId,
        ["reported_tcb"] = Tcb(3, 0, 20, 209),
        ["committed_tcb"] = Tcb(3, 0, 20, 209),
        ["launch_tcb"] = Tcb(3, 0, 20, 209),
        ["current_tcb"] = Tcb(3, 0, 20, 209),
        ["report_data"] = ReportData,
        ["measurement"] = Measurement,
        ["host_data"] = HostData,
        ["id_key_digest"] = IdKey,
        ["author_key_digest"] = AuthorKey,
        ["product"] = "Genoa",
        ["signing_key"] = "vcek",
    };

    public static JsonObject Tcb(int bootloader, int tee, int snp, int microcode) => new()
    {
        ["bootloader"] = bootloader,
        ["tee"] = tee,
        ["snp"] = snp,
        ["microcode"] = microcode,
    };

    /// <summary>A TDX policy that grants <see cref="TdxClaims"/>; <paramref name="extra"/> lines are added at the top level, <paramref name="tdx"/> lines inside tdx.</summary>
    public static string TdxPolicy(string extra = "", string tdx = "") => $"""
        name: model-a
        version: 3
        tee: [tdx]
        {extra}
        tdx:
          mrTd: [{MrTd}, {OtherMrTd}]
        {Indent(tdx)}
        """;

    public static string SnpPolicy(string extra = "", string snp = "") => $"""
        name: model-b
        version: 1
        tee: [sev-snp]
        {extra}
        snp:
          measurement: [{Measurement}]
        {Indent(snp)}
        """;

    private static string Indent(string lines) =>
        string.Join("\n", lines.Split('\n').Select(l => l.Length == 0 ? l : "  " + l));

    public static PolicyInput TdxInput(JsonObject? claims = null) => new("tdx", claims ?? TdxClaims(), At) { CrlChecked = true };

    public static PolicyInput SnpInput(JsonObject? claims = null) => new("sev-snp", claims ?? SnpClaims(), At) { CrlChecked = true };

    public static PolicyDecision Eval(string policy, PolicyInput input) => PolicyEvaluator.Evaluate(ReleasePolicy.Parse(policy), input);
}
