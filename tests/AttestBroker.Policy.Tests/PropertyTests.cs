using System.Text.Json.Nodes;
using CsCheck;
using NUnit.Framework;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Random_claims_never_make_the_evaluator_throw
{
    private static readonly string[] Names =
    [
        "mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_config_id", "mr_owner", "mr_owner_config", "mr_seam", "report_data", "debug",
        "tcb_status", "qe_tcb_status", "advisory_ids", "tee_tcb_svn", "quote_version", "vmpl", "measurement", "host_data", "family_id",
        "image_id", "id_key_digest", "author_key_digest", "reported_tcb", "committed_tcb", "launch_tcb", "policy", "guest_svn", "x",
    ];

    private static readonly Gen<JsonNode?> Scalar = Gen.OneOf<JsonNode?>(
        Gen.Const((JsonNode?)null),
        Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b)),
        Gen.Long.Select(l => (JsonNode?)JsonValue.Create(l)),
        Gen.ULong.Select(l => (JsonNode?)JsonValue.Create(l)),
        Gen.Double.Select(d => (JsonNode?)JsonValue.Create(d)),
        Gen.Byte.Array[0, 70].Select(b => (JsonNode?)JsonValue.Create(Convert.ToHexStringLower(b))),
        Gen.Const<JsonNode?>(JsonValue.Create(MrTd)),
        Gen.String.Select(s => (JsonNode?)JsonValue.Create(s)),
        Gen.OneOfConst("UpToDate", "OutOfDate", "Revoked", "").Select(s => (JsonNode?)JsonValue.Create(s)));

    private static readonly Gen<JsonNode?> Value = Gen.OneOf(
        Scalar,
        Scalar.List[0, 4].Select(l => (JsonNode?)new JsonArray([.. l.Select(n => n?.DeepClone())])),
        Gen.Select(Gen.OneOfConst("bootloader", "tee", "snp", "microcode", "fmc", "y"), Scalar).List[0, 6]
            .Select(kv => (JsonNode?)ToObject(kv)));

    private static JsonObject ToObject(IEnumerable<(string Key, JsonNode? Value)> entries)
    {
        var o = new JsonObject();
        foreach (var (k, v) in entries)
        {
            o[k] = v?.DeepClone();
        }

        return o;
    }

    private static readonly Gen<JsonObject> ClaimSets =
        Gen.Select(Gen.OneOfConst(Names), Value).List[0, 30].Select(ToObject);

    private static readonly ReleasePolicy Rich = ReleasePolicy.Parse($"""
        name: rich
        version: 1
        tee: [tdx, sev-snp]
        reportData: [{ReportData}]
        maxCollateralAge: 1d
        requester: {"{"}namespaces: [ml]{"}"}
        tdx:
          mrTd: [{MrTd}]
          rtmr1: [{Rtmr1}]
          minTeeTcbSvn: {TeeTcbSvn}
          qeTcbStatus: [UpToDate]
        snp:
          measurement: [{Measurement}]
          hostData: [{HostData}]
          minReportedTcb: {"{"}snp: 1, fmc: 1{"}"}
        expressions:
          - name: a
            expr: claims.vmpl == 0 || claims.quote_version >= 4
          - name: b
            expr: claims.advisory_ids.exists(x, x == 'INTEL-SA-00837')
        """);

    [Test]
    public void Random_claim_sets_are_decided_without_exceptions_and_deterministically()
    {
        Gen.Select(ClaimSets, Gen.OneOfConst("tdx", "sev-snp", "sgx"), Gen.Bool).Sample((claims, tee, sim) =>
        {
            var input = new PolicyInput(tee, claims, At) { Simulated = sim, CrlChecked = !sim };
            var a = PolicyEvaluator.Evaluate(Rich, input);
            var b = PolicyEvaluator.Evaluate(Rich, input);
            Assert.That(b.ToJson().ToJsonString(), Is.EqualTo(a.ToJson().ToJsonString()));
            Assert.That(a.Granted, Is.False, "a random claim set cannot meet every rule of the rich policy");
        }, iter: 300);
    }
}

[TestFixture]
public sealed class A_violated_constraint_always_denies
{
    private sealed record Violation(string Tee, string Code, Action<JsonObject> Apply);

    private static Violation[] Violations(byte[] noise) =>
    [
        new("tdx", PolicyCodes.MeasurementMismatch, c => c["mr_td"] = Other(MrTd, noise, 48)),
        new("tdx", PolicyCodes.MeasurementMismatch, c => c["rtmr0"] = Other(Rtmr0, noise, 48)),
        new("tdx", PolicyCodes.MeasurementMismatch, c => c["rtmr3"] = Other(Rtmr3, noise, 48)),
        new("tdx", PolicyCodes.MeasurementMismatch, c => c["mr_config_id"] = Other(MrConfigId, noise, 48)),
        new("tdx", PolicyCodes.MeasurementMismatch, c => c["mr_seam"] = Other(MrSeam, noise, 48)),
        new("tdx", PolicyCodes.ReportDataMismatch, c => c["report_data"] = Other(ReportData, noise, 64)),
        new("tdx", PolicyCodes.DebugNotAllowed, c => c["debug"] = true),
        new("tdx", PolicyCodes.TcbStatusNotAllowed, c => c["tcb_status"] = "OutOfDate"),
        new("tdx", PolicyCodes.AdvisoryNotAllowed, c => c["advisory_ids"] = new JsonArray("INTEL-SA-" + noise[0])),
        new("tdx", PolicyCodes.TcbBelowMinimum, c => c["tee_tcb_svn"] = "0a" + TeeTcbSvn[2..]),
        new("tdx", PolicyCodes.ExpressionFalse, c => c["quote_version"] = 5),
        new("sev-snp", PolicyCodes.MeasurementMismatch, c => c["measurement"] = Other(Measurement, noise, 48)),
        new("sev-snp", PolicyCodes.HostDataMismatch, c => c["host_data"] = Other(HostData, noise, 32)),
        new("sev-snp", PolicyCodes.FamilyIdMismatch, c => c["family_id"] = Other(FamilyId, noise, 16)),
        new("sev-snp", PolicyCodes.IdKeyMismatch, c => c["id_key_digest"] = Other(IdKey, noise, 48)),
        new("sev-snp", PolicyCodes.VmplNotAllowed, c => c["vmpl"] = 1 + (noise[0] % 3)),
        new("sev-snp", PolicyCodes.DebugNotAllowed, c => c["debug"] = true),
        new("sev-snp", PolicyCodes.TcbBelowMinimum, c => ((JsonObject)c["committed_tcb"]!)["snp"] = noise[0] % 20),
        new("sev-snp", PolicyCodes.TcbBelowMinimum, c => ((JsonObject)c["launch_tcb"]!)["microcode"] = noise[0] % 209),
        new("sev-snp", PolicyCodes.ReportDataMismatch, c => c.Remove("report_data")),
    ];

    /// <summary>A hex value of the same length that differs from <paramref name="value"/>.</summary>
    private static string Other(string value, byte[] noise, int bytes)
    {
        var b = Convert.FromHexString(value);
        for (var i = 0; i < bytes; i++)
        {
            b[i] ^= noise[i % noise.Length];
        }

        b[noise[0] % bytes] ^= 0x80;
        return Convert.ToHexStringLower(b);
    }

    private static readonly ReleasePolicy Strict = ReleasePolicy.Parse($"""
        name: strict
        version: 1
        tee: [tdx, sev-snp]
        reportData: [{ReportData}]
        tdx:
          mrTd: [{MrTd}]
          rtmr0: [{Rtmr0}]
          rtmr3: [{Rtmr3}]
          mrConfigId: [{MrConfigId}]
          mrSeam: [{MrSeam}]
          minTeeTcbSvn: {TeeTcbSvn}
        snp:
          measurement: [{Measurement}]
          hostData: [{HostData}]
          familyId: [{FamilyId}]
          idKeyDigest: [{IdKey}]
          minCommittedTcb: {"{"}snp: 20{"}"}
          minLaunchTcb: {"{"}microcode: 209{"}"}
        expressions:
          - name: v4
            expr: tee != 'tdx' || claims.quote_version == 4
        """);

    [Test]
    public void The_unchanged_claims_are_granted()
    {
        Asserts.Granted(PolicyEvaluator.Evaluate(Strict, TdxInput()));
        Asserts.Granted(PolicyEvaluator.Evaluate(Strict, SnpInput()));
    }

    [Test]
    public void Any_set_of_violations_denies_and_names_each_violated_rule()
    {
        Gen.Select(Gen.Byte.Array[1, 64], Gen.UInt).Sample((noise, mask) =>
        {
            var all = Violations(noise);
            foreach (var tee in new[] { "tdx", "sev-snp" })
            {
                var claims = tee == "tdx" ? TdxClaims() : SnpClaims();
                var chosen = all.Where((v, i) => v.Tee == tee && (mask & (1u << (i % 32))) != 0).ToList();
                if (chosen.Count == 0)
                {
                    chosen.Add(all.First(v => v.Tee == tee));
                }

                foreach (var v in chosen)
                {
                    v.Apply(claims);
                }

                var d = PolicyEvaluator.Evaluate(Strict, new PolicyInput(tee, claims, At) { CrlChecked = true });
                Assert.That(d.Granted, Is.False);
                Assert.That(chosen.Select(v => v.Code).Distinct(), Is.SubsetOf(d.Failures.Select(f => f.Code)));
            }
        }, iter: 300);
    }
}

[TestFixture]
public sealed class Damaged_documents_never_escape_as_other_exceptions
{
    private static readonly string Valid = TdxPolicy("reportData: [" + ReportData + "]\nrequester: {namespaces: [ml]}", "tcbStatus: [UpToDate]\nminTeeTcbSvn: " + TeeTcbSvn);

    [Test]
    public void Truncated_or_corrupted_yaml_parses_or_throws_PolicyFormatException()
    {
        Gen.Select(Gen.Int[0, Valid.Length], Gen.Char, Gen.Bool).Sample((at, c, truncate) =>
        {
            var doc = truncate ? Valid[..at] : Valid[..at] + c + Valid[at..];
            try
            {
                ReleasePolicy.Parse(doc);
            }
            catch (PolicyFormatException)
            {
            }
        }, iter: 2000);
    }

    [Test]
    public void Random_text_parses_or_throws_PolicyFormatException()
    {
        Gen.String.Sample(s =>
        {
            try
            {
                ReleasePolicy.Parse(s);
            }
            catch (PolicyFormatException)
            {
            }
        }, iter: 2000);
    }
}

[TestFixture]
public sealed class Random_schema_violations_are_rejected_at_their_path
{
    private static readonly HashSet<string> Known = new(StringComparer.Ordinal)
    {
        "name", "version", "description", "explain", "tee", "allowDebug", "allowSimulated", "allowUncheckedCrl", "maxCollateralAge",
        "reportData", "requester", "tdx", "snp", "expressions", "mrTd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrConfigId", "mrOwner",
        "mrOwnerConfig", "mrSeam", "tcbStatus", "qeTcbStatus", "allowedAdvisories", "minTeeTcbSvn",
    };

    [Test]
    public void An_unknown_field_anywhere_is_rejected_with_its_path()
    {
        var names = Gen.String[Gen.Char.AlphaNumeric, 1, 12].Where(n => !Known.Contains(n) && char.IsLetter(n[0]));
        Gen.Select(names, Gen.Bool).Sample((field, inTdx) =>
        {
            var doc = inTdx ? TdxPolicy(tdx: field + ": 1") : TdxPolicy(field + ": 1");
            var ex = Assert.Throws<PolicyFormatException>(() => ReleasePolicy.Parse(doc))!;
            Assert.That(ex.Path, Is.EqualTo(inTdx ? "tdx." + field : field));
            Assert.That(ex.Problem, Does.StartWith("unknown field"));
        }, iter: 200);
    }

    private static readonly (string Field, int Bytes, bool Tdx)[] HexFields =
    [
        ("mrTd", 48, true), ("rtmr0", 48, true), ("rtmr3", 48, true), ("mrConfigId", 48, true), ("mrSeam", 48, true),
        ("measurement", 48, false), ("hostData", 32, false), ("familyId", 16, false), ("imageId", 16, false), ("idKeyDigest", 48, false),
        ("authorKeyDigest", 48, false),
    ];

    [Test]
    public void A_hex_value_of_the_wrong_length_is_rejected_with_its_path()
    {
        Gen.Select(Gen.Int[0, HexFields.Length - 1], Gen.Int[1, 100], Gen.Int[0, 2]).Sample((i, bytes, index) =>
        {
            var (field, expected, tdx) = HexFields[i];
            if (bytes == expected)
            {
                bytes++;
            }

            var values = Enumerable.Range(0, index + 1).Select(k => k == index ? Hex(bytes, 0x0f) : Hex(expected, (byte)(k + 1)));
            var list = $"{field}: [{string.Join(", ", values)}]";
            var doc = tdx
                ? $"name: p\nversion: 1\ntee: [tdx]\ntdx:\n  rtmr1: [{Rtmr1}]\n  {list}\n"
                : $"name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [{Measurement}]\n  {list}\n".Replace("  measurement: [" + Measurement + "]\n  measurement:", "  measurement:", StringComparison.Ordinal);
            var ex = Assert.Throws<PolicyFormatException>(() => ReleasePolicy.Parse(doc))!;
            Assert.That(ex.Path, Is.EqualTo($"{(tdx ? "tdx" : "snp")}.{field}[{index}]"));
            Assert.That(ex.Problem, Does.StartWith($"must be {expected} bytes"));
        }, iter: 300);
    }
}
