using NUnit.Framework;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Policy_documents_parse_from_yaml_and_json
{
    [Test]
    public void Yaml_document_reads_every_field()
    {
        var p = ReleasePolicy.Parse($"""
            name: llama-70b
            version: 7
            description: release only to the approved image
            explain: false
            tee: [tdx, sev-snp]
            allowDebug: false
            allowSimulated: true
            allowUncheckedCrl: true
            maxCollateralAge: 30d
            reportData: [{ReportData}]
            requester:
              namespaces: [ml]
              serviceAccounts: [runner]
            tdx:
              mrTd: [{MrTd}]
              rtmr2: [{Rtmr2}]
              tcbStatus: [UpToDate, SWHardeningNeeded]
              qeTcbStatus: [UpToDate]
              allowedAdvisories: [INTEL-SA-00837]
              minTeeTcbSvn: {TeeTcbSvn}
            snp:
              measurement: [{Measurement}]
              hostData: [{HostData}]
              vmpl: [0, 1]
              minReportedTcb: {"{"}snp: 20{"}"}
            expressions:
              - name: guest-svn
                expr: claims.guest_svn >= 1
            """);
        Assert.Multiple(() =>
        {
            Assert.That(p.Name, Is.EqualTo("llama-70b"));
            Assert.That(p.Version, Is.EqualTo(7));
            Assert.That(p.Explain, Is.False);
            Assert.That(p.Tee, Is.EqualTo(new[] { "tdx", "sev-snp" }));
            Assert.That(p.AllowSimulated, Is.True);
            Assert.That(p.AllowUncheckedCrl, Is.True);
            Assert.That(p.MaxCollateralAge, Is.EqualTo(TimeSpan.FromDays(30)));
            Assert.That(p.Requester!.Namespaces, Is.EqualTo(new[] { "ml" }));
            Assert.That(p.Tdx!.Allowlists.Select(a => a.Claim), Is.EqualTo(new[] { "mr_td", "rtmr2" }));
            Assert.That(p.Tdx.TcbStatus, Is.EqualTo(new[] { "UpToDate", "SWHardeningNeeded" }));
            Assert.That(p.Tdx.MinTeeTcbSvn, Is.EqualTo(TeeTcbSvn));
            Assert.That(p.Snp!.Vmpl, Is.EqualTo(new[] { 0, 1 }));
            Assert.That(p.Snp.MinTcb.Single(), Is.EqualTo(new TcbMinimum("snp.minReportedTcb.snp", "reported_tcb", "snp", 20)));
            Assert.That(p.Expressions.Single().Name, Is.EqualTo("guest-svn"));
        });
    }

    [Test]
    public void Json_document_reads_like_the_yaml_one()
    {
        var p = ReleasePolicy.Parse("{\"name\":\"m\",\"version\":2,\"tee\":[\"sev-snp\"],\"snp\":{\"measurement\":[\"" + Measurement + "\"],\"vmpl\":[0],\"minLaunchTcb\":{\"microcode\":200}}}");
        Assert.Multiple(() =>
        {
            Assert.That(p.Version, Is.EqualTo(2));
            Assert.That(p.Snp!.Allowlists.Single().Values, Is.EqualTo(new[] { Measurement }));
            Assert.That(p.Snp.MinTcb.Single().Minimum, Is.EqualTo(200));
            Assert.That(p.Explain, Is.True);
        });
    }

    [Test]
    public void Defaults_fail_closed()
    {
        var p = ReleasePolicy.Parse("name: x\nversion: 1\n");
        Assert.Multiple(() =>
        {
            Assert.That(p.Tee, Is.Empty);
            Assert.That(p.AllowDebug, Is.False);
            Assert.That(p.AllowSimulated, Is.False);
            Assert.That(p.AllowUncheckedCrl, Is.False);
        });
        var t = ReleasePolicy.Parse(TdxPolicy());
        Assert.That(t.Tdx!.TcbStatus, Is.EqualTo(new[] { "UpToDate" }));
        Assert.That(t.Tdx.AllowedAdvisories, Is.Empty);
        Assert.That(ReleasePolicy.Parse(SnpPolicy()).Snp!.Vmpl, Is.EqualTo(new[] { 0 }));
    }

    [Test]
    public void Upper_case_hex_is_read_as_lower_case() =>
        Assert.That(ReleasePolicy.Parse(TdxPolicy(tdx: $"rtmr0: [{Rtmr0.ToUpperInvariant()}]")).Tdx!.Allowlists[1].Values, Is.EqualTo(new[] { Rtmr0 }));
}

[TestFixture]
public sealed class Malformed_policy_documents_are_rejected_with_the_field_path
{
    private static readonly string M48 = Hex(48, 1);

    private static IEnumerable<TestCaseData> Cases()
    {
        TestCaseData C(string doc, string path, string fragment, string name) => new TestCaseData(doc, path, fragment).SetName(name);
        var tdxHead = "name: p\nversion: 1\ntee: [tdx]\n";
        yield return C("", "", "empty", "Empty_document");
        yield return C("   \n", "", "empty", "Blank_document");
        yield return C("- a\n- b\n", "", "mapping", "Top_level_list");
        yield return C("version: 1\n", "name", "required", "Missing_name");
        yield return C("name: p\n", "version", "required", "Missing_version");
        yield return C("name: p\nversion: 0\n", "version", "between 1", "Version_zero");
        yield return C("name: p\nversion: one\n", "version", "whole number", "Version_not_a_number");
        yield return C("name: p q\nversion: 1\n", "name", "letters", "Name_with_a_space");
        yield return C("name: p\nversion: 1\ncolour: red\n", "colour", "unknown field", "Unknown_top_level_field");
        yield return C("name: p\nversion: 1\nname: q\n", "name", "duplicate", "Duplicate_key");
        yield return C("name: p\nversion: 1\ntee: [sgx]\n", "tee[0]", "TEE kind", "Unknown_tee_kind");
        yield return C("name: p\nversion: 1\nallowDebug: yes\n", "allowDebug", "true or false", "Yaml_1_1_yes_is_not_a_boolean");
        yield return C("name: p\nversion: 1\nallowDebug: \"true\"\n", "allowDebug", "true or false", "Quoted_boolean");
        yield return C(tdxHead, "tdx", "at least one", "Tdx_allowed_without_a_section");
        yield return C(tdxHead + "tdx:\n  mrConfigId: [" + M48 + "]\n", "tdx", "at least one of mrTd", "Tdx_without_a_measurement_constraint");
        yield return C("name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  hostData: [" + Hex(32, 1) + "]\n", "snp", "measurement or idKeyDigest", "Snp_without_a_measurement_constraint");
        yield return C(tdxHead + "tdx:\n  mrTd: [" + M48 + "]\nsnp:\n  measurement: [" + M48 + "]\n", "snp", "not in tee", "Section_for_a_tee_not_allowed");
        yield return C(tdxHead + "tdx:\n  mrTd: [abcd]\n", "tdx.mrTd[0]", "48 bytes", "Short_mr_td");
        yield return C(tdxHead + "tdx:\n  mrTd: [" + M48 + ", " + Hex(49, 1) + "]\n", "tdx.mrTd[1]", "48 bytes", "Long_mr_td_in_second_place");
        yield return C(tdxHead + "tdx:\n  mrTd: [" + M48[..^1] + "g]\n", "tdx.mrTd[0]", "non-hex", "Non_hex_digit");
        yield return C(tdxHead + "tdx:\n  mrTd: []\n", "tdx.mrTd", "empty list", "Empty_allowlist");
        yield return C(tdxHead + "tdx:\n  mrTd: " + M48 + "\n", "tdx.mrTd", "must be a list", "Allowlist_not_a_list");
        yield return C(tdxHead + "tdx:\n  mrTd: [" + M48 + ", " + M48 + "]\n", "tdx.mrTd[1]", "repeats", "Repeated_allowlist_entry");
        yield return C(tdxHead + "tdx:\n  mrTd: [" + M48 + "]\n  mrtd: [" + M48 + "]\n", "tdx.mrtd", "unknown field", "Misspelt_tdx_field");
        yield return C(tdxHead + "tdx:\n  mrTd: [" + M48 + "]\n  tcbStatus: [Fine]\n", "tdx.tcbStatus[0]", "Intel TCB status", "Unknown_tcb_status");
        yield return C(tdxHead + "tdx:\n  mrTd: [" + M48 + "]\n  minTeeTcbSvn: 0102\n", "tdx.minTeeTcbSvn", "16 bytes", "Short_tee_tcb_svn");
        yield return C("name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [" + M48 + "]\n  hostData: [" + M48 + "]\n", "snp.hostData[0]", "32 bytes", "Host_data_of_48_bytes");
        yield return C("name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [" + M48 + "]\n  vmpl: [4]\n", "snp.vmpl[0]", "between 0 and 3", "Vmpl_4");
        yield return C("name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [" + M48 + "]\n  minReportedTcb: {snp: 256}\n", "snp.minReportedTcb.snp", "between 0 and 255", "Tcb_component_above_255");
        yield return C("name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [" + M48 + "]\n  minReportedTcb: {sev: 1}\n", "snp.minReportedTcb.sev", "unknown field", "Unknown_tcb_component");
        yield return C("name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [" + M48 + "]\n  minReportedTcb: {}\n", "snp.minReportedTcb", "no component", "Empty_tcb_minimum");
        yield return C("name: p\nversion: 1\nmaxCollateralAge: 30 days\n", "maxCollateralAge", "duration", "Bad_duration");
        yield return C("name: p\nversion: 1\nmaxCollateralAge: 0d\n", "maxCollateralAge", "duration", "Zero_duration");
        yield return C("name: p\nversion: 1\nrequester: {}\n", "requester", "neither", "Empty_requester");
        yield return C("name: p\nversion: 1\nrequester:\n  namespaces: [Bad_NS]\n", "requester.namespaces[0]", "namespace", "Bad_namespace");
        yield return C("name: p\nversion: 1\nexpressions:\n  - name: a\n", "expressions[0].expr", "required", "Expression_without_text");
        yield return C("name: p\nversion: 1\nexpressions:\n  - name: a\n    expr: 'claims.vmpl =='\n", "expressions[0].expr", "not a valid CEL expression", "Malformed_expression");
        yield return C("name: p\nversion: 1\nexpressions:\n  - {name: a, expr: 'true'}\n  - {name: a, expr: 'true'}\n", "expressions[1].name", "already", "Duplicate_expression_name");
        yield return C("name: &n p\nversion: 1\n", "name", "anchors", "Yaml_anchor");
        yield return C("a: &x [1]\nb: *x\n", "a", "anchors", "Yaml_alias");
        yield return C("name: !!binary aGVsbG8=\nversion: 1\n", "name", "tags", "Yaml_tag");
        yield return C("name: p\nversion: 1\n---\nname: q\nversion: 1\n", "", "more than one", "Two_yaml_documents");
        yield return C("name: [unclosed\n", "", "not valid YAML", "Broken_yaml");
        yield return C("? [a]\n: b\n", "", "plain text", "Complex_yaml_key");
        yield return C("{\"name\":\"p\",\"version\":1,}", "", "not valid JSON", "Json_trailing_comma");
        yield return C("{\"name\":\"p\",\"version\":1,\"name\":\"q\"}", "name", "duplicate", "Json_duplicate_key");
        yield return C("{\"name\":\"p\",\"version\":\"1\"}", "version", "whole number", "Json_version_as_string");
        yield return C("{\"name\":\"p\",\"version\":1.5}", "version", "whole number", "Json_fractional_version");
        yield return C("{\"name\":\"p\",\"version\":1,\"allowDebug\":1}", "allowDebug", "true or false", "Json_number_as_boolean");
        yield return C("{\"name\":7,\"version\":1}", "name", "must be a string", "Json_number_as_string");
        yield return C(new string('[', 100000), string.Concat(Enumerable.Repeat("[0]", 16)), "nested deeper than 16", "Yaml_nested_100000_deep");
        yield return C("{\"a\":" + string.Concat(Enumerable.Repeat("[", 5000)), "", "not valid JSON", "Json_nested_5000_deep");
        yield return C("name: p\nversion: 1\ndescription: " + new string('x', 300_000) + "\n", "", "at most", "Oversized_document");
    }

    [TestCaseSource(nameof(Cases))]
    public void Is_rejected_with_a_PolicyFormatException_naming_the_path(string document, string path, string fragment)
    {
        var ex = Assert.Throws<PolicyFormatException>(() => ReleasePolicy.Parse(document))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Path, Is.EqualTo(path), ex.Message);
            Assert.That(ex.Message, Does.Contain(fragment));
            if (path.Length > 0)
            {
                Assert.That(ex.Message, Does.StartWith(path + ": "));
            }
        });
    }

    [Test]
    public void Yaml_errors_carry_line_and_column()
    {
        var ex = Assert.Throws<PolicyFormatException>(() => ReleasePolicy.Parse("name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [zz]\n"))!;
        Assert.That(ex.Message, Does.Contain("line 5"));
    }
}
