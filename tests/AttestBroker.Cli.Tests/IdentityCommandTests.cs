using NUnit.Framework;

namespace AttestBroker.Cli.Tests;

[TestFixture]
public sealed class Identity_digest_command
{
    // docs/identity.md's worked example: printf '%s' '{"version":1,"namespace":"ml-prod","serviceAccount":"llm-runner"}' | sha256sum
    private const string Digest = "7bebb60482beccc4efa146f0849a37de280486d589448647b07ef30099851c3f";

    [Test]
    public async Task Prints_the_documented_worked_example()
    {
        var (exit, output, err) = await CliRunner.RunAsync("identity", "digest", "--namespace", "ml-prod", "--service-account", "llm-runner");
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(0), err);
            Assert.That(output, Does.Contain("{\"version\":1,\"namespace\":\"ml-prod\",\"serviceAccount\":\"llm-runner\"}"));
            Assert.That(output, Does.Contain("SEV-SNP HOST_DATA:   " + Digest));
            Assert.That(output, Does.Contain("TDX MRCONFIGID:      " + Digest + new string('0', 32)));
        });
    }

    [TestCase("tdx", Digest + "00000000000000000000000000000000")]
    [TestCase("sev-snp", Digest)]
    public async Task Prints_one_tees_value_for_scripts(string tee, string expected)
    {
        var (exit, output, _) = await CliRunner.RunAsync("identity", "digest", "--namespace", "ml-prod", "--service-account", "llm-runner", "--tee", tee);
        Assert.That((exit, output.Trim()), Is.EqualTo((0, expected)));
    }

    [Test]
    public async Task Json_output_carries_every_value()
    {
        var (exit, output, _) = await CliRunner.RunAsync("identity", "digest", "--namespace", "ml-prod", "--service-account", "llm-runner", "--json");
        var o = CliRunner.JsonLines(output).Single();
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.Zero);
            Assert.That((string?)o["sha256"], Is.EqualTo(Digest));
            Assert.That((string?)o["sev_snp_host_data"], Is.EqualTo(Digest));
            Assert.That((string?)o["tdx_mr_config_id"], Has.Length.EqualTo(96));
        });
    }

    [TestCase("--namespace", "ML_Prod", "--namespace")]
    [TestCase("--service-account", "bad\"name", "--service-account")]
    public async Task A_name_kubernetes_would_refuse_is_a_usage_error(string option, string value, string named)
    {
        var args = new List<string> { "identity", "digest", "--namespace", "ml-prod", "--service-account", "llm-runner" };
        args[args.IndexOf(option) + 1] = value;
        var (exit, _, err) = await CliRunner.RunAsync([.. args]);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(err, Does.StartWith("error: " + named + ":"));
            Assert.That(err, Does.Not.Contain("   at "), "no stack trace");
        });
    }

    [Test]
    public async Task An_unknown_tee_is_a_usage_error()
    {
        var (exit, _, err) = await CliRunner.RunAsync("identity", "digest", "--namespace", "a", "--service-account", "b", "--tee", "sgx");
        Assert.That((exit, err.Trim()), Is.EqualTo((2, "error: --tee must be tdx or sev-snp")));
    }
}
