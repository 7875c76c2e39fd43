using System.Text.Json.Nodes;
using AttestBroker.Cli;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Policy.Tests;

/// <summary>Runs <c>attestbroker policy ...</c> in-process on the real vectors and the example policies of docs/policies.</summary>
internal static class PolicyCli
{
    public const string Gt2 = "tdx/go-tdx-guest/quote_v5_sample.dat";
    public const string Gt2Collateral = "tdx/dcap-qvl/tdx_quote_outdated_collateral.json";
    public const string Gt2At = "2026-03-20T10:41:14Z";
    public const string Gt3 = "tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat";
    public const string Sg1 = "snp/go-sev-guest/attestation.bin";
    public const string Sg1At = "2022-09-24T01:00:00Z";
    public const string Gt2MrTd = "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876";

    public static string Example(string name) => Path.Combine(AppContext.BaseDirectory, "policies", name);

    public static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await CliApp.RunAsync(args, stdout, stderr).ConfigureAwait(false);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    public static string[] Gt2Args(string policy, params string[] more) =>
        ["policy", "test", "--policy", policy, "--evidence", Vectors.Path(Gt2), "--collateral", Vectors.Path(Gt2Collateral), "--at", Gt2At, .. more];

    public static string[] Sg1Args(string policy, params string[] more) =>
        ["policy", "test", "--policy", policy, "--evidence", Vectors.Path(Sg1), "--vcek", Vectors.Path("snp/go-sev-guest/vcek.testcer.der"),
            "--ca-chain", Vectors.Path("snp/go-sev-guest/trust/ask_ark_milan.pem"), "--at", Sg1At, .. more];

    public static List<(string Code, string Rule)> Failures(string jsonOutput) =>
        JsonNode.Parse(jsonOutput)!["failures"]!.AsArray().Select(f => ((string)f!["code"]!, (string)f["rule"]!)).ToList();
}

[TestFixture]
public sealed class Policy_test_command_on_real_evidence
{
    private string _tmp = null!;

    [SetUp]
    public void SetUp() => _tmp = Directory.CreateTempSubdirectory("ab-policy-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_tmp, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_tmp, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Test]
    public async Task Tdx_example_policy_grants_the_real_v5_quote_for_the_named_requester_with_exit_0()
    {
        var (exit, output, _) = await PolicyCli.RunAsync(PolicyCli.Gt2Args(PolicyCli.Example("tdx-example.yaml"), "--namespace", "ml-serving", "--service-account", "llm-runner"));
        Assert.That(output, Does.StartWith("granted by policy llama-3-70b-instruct (version 4)"));
        Assert.That(exit, Is.EqualTo(0));
    }

    [Test]
    public async Task Tdx_example_policy_denies_an_unknown_requester_with_identity_mismatch_and_exit_1()
    {
        var (exit, output, _) = await PolicyCli.RunAsync(PolicyCli.Gt2Args(PolicyCli.Example("tdx-example.yaml"), "--json"));
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(PolicyCli.Failures(output), Is.EqualTo(new[]
        {
            ("identity_mismatch", "requester.namespaces"),
            ("identity_mismatch", "requester.serviceAccounts"),
        }));
    }

    [Test]
    public async Task Another_mr_td_is_denied_with_measurement_mismatch_showing_expected_and_actual()
    {
        var other = new string('a', 96);
        var policy = Write("p.yaml", $"name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [{other}]\n");
        var (exit, output, _) = await PolicyCli.RunAsync(PolicyCli.Gt2Args(policy, "--json"));
        var o = JsonNode.Parse(output)!;
        var f = o["failures"]!.AsArray().Single()!;
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That((string?)o["decision"], Is.EqualTo("denied"));
            Assert.That((string?)f["code"], Is.EqualTo("measurement_mismatch"));
            Assert.That((string?)f["claim"], Is.EqualTo("mr_td"));
            Assert.That(f["expected"]!.ToJsonString(), Is.EqualTo($"[\"{other}\"]"));
            Assert.That((string?)f["actual"], Is.EqualTo(PolicyCli.Gt2MrTd));
            Assert.That((string?)o["verification"]!["verdict"], Is.EqualTo("accepted"));
        });
    }

    [Test]
    public async Task Text_output_lists_each_failing_rule_with_expected_and_actual()
    {
        var policy = Write("p.yaml", $"name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [{new string('a', 96)}]\n  tcbStatus: [OutOfDate]\n");
        var (exit, output, _) = await PolicyCli.RunAsync(PolicyCli.Gt2Args(policy));
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(output, Does.Contain("x measurement_mismatch [tdx.mrTd] mr_td"));
        Assert.That(output, Does.Contain("actual:   \"" + PolicyCli.Gt2MrTd + "\""));
        Assert.That(output, Does.Contain("x tcb_status_not_allowed [tdx.tcbStatus] tcb_status"));
        Assert.That(output, Does.Contain("expected: [\"OutOfDate\"]"));
    }

    [Test]
    public async Task Snp_example_policy_denies_the_debug_report_verified_without_crls()
    {
        var (exit, output, _) = await PolicyCli.RunAsync(PolicyCli.Sg1Args(PolicyCli.Example("snp-example.json"), "--json"));
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(PolicyCli.Failures(output), Is.EqualTo(new[]
        {
            ("crl_not_checked", "allowUncheckedCrl"),
            ("debug_not_allowed", "allowDebug"),
        }));
    }

    [Test]
    public async Task Snp_report_is_granted_when_the_policy_allows_debug_and_unchecked_crls()
    {
        var text = File.ReadAllText(PolicyCli.Example("snp-example.json"))
            .Replace("\"allowUncheckedCrl\": false", "\"allowUncheckedCrl\": true, \"allowDebug\": true", StringComparison.Ordinal);
        var (exit, output, _) = await PolicyCli.RunAsync(PolicyCli.Sg1Args(Write("snp.json", text)));
        Assert.That(output, Does.StartWith("granted by policy mistral-7b"));
        Assert.That(exit, Is.EqualTo(0));
    }

    [Test]
    public async Task A_verification_rejection_is_a_denial_with_verification_failed_and_exit_1()
    {
        var policy = Write("p.yaml", $"name: p\nversion: 1\ntee: [tdx]\nallowUncheckedCrl: true\ntdx:\n  mrTd: [{PolicyCli.Gt2MrTd}]\n");
        var (exit, output, _) = await PolicyCli.RunAsync("policy", "test", "--json", "--policy", policy, "--evidence", Vectors.Path(PolicyCli.Gt3), "--at", "2025-01-01T00:00:00Z");
        Assert.That(exit, Is.EqualTo(1));
        var failures = PolicyCli.Failures(output);
        Assert.That(failures, Does.Contain(("verification_failed", "verification")));
        var actual = JsonNode.Parse(output)!["failures"]!.AsArray().Where(f => (string?)f!["code"] == "verification_failed").Select(f => (string?)f!["actual"]);
        Assert.That(actual, Does.Contain("collateral_missing"));
    }
}

[TestFixture]
public sealed class Policy_test_command_usage_errors
{
    private string _tmp = null!;

    [SetUp]
    public void SetUp() => _tmp = Directory.CreateTempSubdirectory("ab-policy-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_tmp, recursive: true);

    private string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(_tmp, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Test]
    public async Task Unrecognised_evidence_is_denied_with_verification_failed_malformed_evidence()
    {
        var policy = Write("p.yaml", System.Text.Encoding.UTF8.GetBytes($"name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [{PolicyCli.Gt2MrTd}]\n"));
        var evidence = Write("e.bin", new byte[100]);
        var (exit, output, _) = await PolicyCli.RunAsync("policy", "test", "--json", "--policy", policy, "--evidence", evidence, "--at", "2026-01-01T00:00:00Z");
        Assert.That(exit, Is.EqualTo(1));
        var f = JsonNode.Parse(output)!["failures"]!.AsArray()[0]!;
        Assert.That(((string?)f["code"], (string?)f["actual"]), Is.EqualTo(("verification_failed", "malformed_evidence")));
    }

    [Test]
    public async Task Invalid_policy_exits_2_naming_the_field()
    {
        var policy = Write("p.yaml", System.Text.Encoding.UTF8.GetBytes("name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [abc]\n"));
        var evidence = Write("e.bin", new byte[100]);
        var (exit, _, err) = await PolicyCli.RunAsync("policy", "test", "--policy", policy, "--evidence", evidence);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(err, Does.Contain("invalid policy: tdx.mrTd[0]: must be 48 bytes"));
        Assert.That(err, Does.Not.Contain("   at "));
    }

    [Test]
    public async Task Policy_that_is_not_utf8_exits_2()
    {
        var policy = Write("p.yaml", [0x6e, 0x61, 0xff, 0xfe, 0x3a]);
        var (exit, _, err) = await PolicyCli.RunAsync("policy", "check", policy);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(err, Does.Contain("not UTF-8"));
    }

    [Test]
    public async Task Missing_files_exit_2()
    {
        var evidence = Write("e.bin", new byte[100]);
        var (exit1, _, err1) = await PolicyCli.RunAsync("policy", "test", "--policy", Path.Combine(_tmp, "none.yaml"), "--evidence", evidence);
        var policy = Write("p.yaml", System.Text.Encoding.UTF8.GetBytes("name: p\nversion: 1\n"));
        var (exit2, _, err2) = await PolicyCli.RunAsync("policy", "test", "--policy", policy, "--evidence", Path.Combine(_tmp, "none.bin"));
        Assert.Multiple(() =>
        {
            Assert.That((exit1, exit2), Is.EqualTo((2, 2)));
            Assert.That(err1, Does.Contain("--policy"));
            Assert.That(err2, Does.Contain("--evidence"));
        });
    }

    [Test]
    public async Task Missing_required_options_exit_2()
    {
        var (exit, _, _) = await PolicyCli.RunAsync("policy", "test", "--policy", "p.yaml");
        Assert.That(exit, Is.EqualTo(2));
    }

    [Test]
    public async Task Namespace_without_service_account_exits_2()
    {
        var policy = Write("p.yaml", System.Text.Encoding.UTF8.GetBytes("name: p\nversion: 1\n"));
        var evidence = Write("e.bin", new byte[100]);
        var (exit, _, err) = await PolicyCli.RunAsync("policy", "test", "--policy", policy, "--evidence", evidence, "--namespace", "ml");
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(err, Does.Contain("go together"));
    }

    [Test]
    public async Task Check_accepts_both_example_policies()
    {
        var (exit1, out1, _) = await PolicyCli.RunAsync("policy", "check", PolicyCli.Example("tdx-example.yaml"));
        var (exit2, out2, _) = await PolicyCli.RunAsync("policy", "check", PolicyCli.Example("snp-example.json"));
        Assert.That((exit1, exit2), Is.EqualTo((0, 0)));
        Assert.That(out1, Does.StartWith("valid: policy llama-3-70b-instruct (version 4)"));
        Assert.That(out2, Does.StartWith("valid: policy mistral-7b (version 2)"));
    }
}
