using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests;

[TestFixture]
public sealed class VerifyCommandTests
{
    private const string Gt1 = "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
    private const string Gt2 = "tdx/go-tdx-guest/quote_v5_sample.dat";
    private const string Gt3 = "tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat";
    private const string Sg1 = "snp/go-sev-guest/attestation.bin";
    private string _tmp = null!;

    [SetUp]
    public void SetUp() => _tmp = Directory.CreateTempSubdirectory("ab-cli-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_tmp, recursive: true);

    [Test]
    public async Task Real_tdx_v5_quote_with_dcap_qvl_collateral_is_accepted_with_exit_0()
    {
        var (exit, output, _) = await CliRunner.RunAsync("verify", "--json", Vectors.Path(Gt2), "--collateral", Vectors.Path("tdx/dcap-qvl/tdx_quote_outdated_collateral.json"), "--at", "2026-03-20T10:41:14Z");
        var line = CliRunner.JsonLines(output).Single();
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(0));
            Assert.That((string?)line["verdict"], Is.EqualTo("accepted"));
            Assert.That((string?)line["tee"], Is.EqualTo("tdx"));
            Assert.That((string?)line["file"], Is.EqualTo(Vectors.Path(Gt2)));
            Assert.That(line["reasons"]!.AsArray(), Is.Empty);
            Assert.That((string?)line["claims"]!["tcb_status"], Is.EqualTo("UpToDate"));
            Assert.That((string?)line["claims"]!["mr_td"], Is.EqualTo("7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876"));
            Assert.That((bool?)line["crl_checked"], Is.True);
            Assert.That((bool?)line["simulated"], Is.False);
        });
    }

    [Test]
    public async Task Real_tdx_v4_quote_whose_tcb_matches_no_level_is_rejected_with_exit_1()
    {
        var (exit, output, _) = await CliRunner.RunAsync("verify", "--json", Vectors.Path(Gt1), "--collateral", Vectors.Path("tdx/go-tdx-guest/collateral"), "--at", "2023-07-01T01:00:00Z");
        var line = CliRunner.JsonLines(output).Single();
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(CliRunner.ReasonCodes(line), Is.EqualTo(new[] { "tcb_level_not_supported" }));
    }

    [Test]
    public async Task Real_snp_report_with_vcek_and_chain_is_accepted_and_says_crl_not_checked()
    {
        var (exit, output, _) = await CliRunner.RunAsync("verify", "--json", Vectors.Path(Sg1), "--vcek", Vectors.Path("snp/go-sev-guest/vcek.testcer.der"), "--ca-chain", Vectors.Path("snp/go-sev-guest/trust/ask_ark_milan.pem"), "--at", "2022-09-24T01:00:00Z");
        var line = CliRunner.JsonLines(output).Single();
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(0));
            Assert.That((string?)line["verdict"], Is.EqualTo("accepted"));
            Assert.That((string?)line["tee"], Is.EqualTo("sev-snp"));
            Assert.That((bool?)line["claims"]!["debug"], Is.True);
            Assert.That((string?)line["claims"]!["product"], Is.EqualTo("Milan"));
            Assert.That((bool?)line["crl_checked"], Is.False);
        });
    }

    [Test]
    public async Task Several_inputs_give_one_line_each_and_exit_1_when_any_is_rejected()
    {
        var (exit, output, _) = await CliRunner.RunAsync("verify", "--json", Vectors.Path(Gt2), Vectors.Path(Gt3), "--collateral", Vectors.Path("tdx/dcap-qvl/tdx_quote_outdated_collateral.json"), "--at", "2026-03-20T10:41:14Z");
        var lines = CliRunner.JsonLines(output);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(lines.Select(l => (string?)l["verdict"]), Is.EqualTo(new[] { "accepted", "rejected" }));
    }

    [Test]
    public async Task Quote_without_collateral_is_rejected_naming_what_is_missing()
    {
        var (exit, output, _) = await CliRunner.RunAsync("verify", "--json", Vectors.Path(Gt3), "--at", "2025-01-01T00:00:00Z");
        var codes = CliRunner.ReasonCodes(CliRunner.JsonLines(output).Single());
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(codes, Does.Contain("collateral_missing"));
        Assert.That(codes, Has.None.Matches<string>(c => c.Contains("signature", StringComparison.Ordinal)));
    }

    [Test]
    public async Task Skip_crl_is_reported_as_crl_not_checked()
    {
        var (_, output, _) = await CliRunner.RunAsync("verify", "--json", "--skip-crl", Vectors.Path(Gt3), "--at", "2025-01-01T00:00:00Z");
        var line = CliRunner.JsonLines(output).Single();
        Assert.That((bool?)line["crl_checked"], Is.False);
        Assert.That(CliRunner.ReasonCodes(line), Has.None.EqualTo("crl_missing"));
    }

    [TestCase(0)]
    [TestCase(7)]
    [TestCase(100)]
    [TestCase(5000)]
    public async Task Arbitrary_bytes_are_rejected_as_malformed_without_a_crash(int size)
    {
        var path = Path.Combine(_tmp, "junk.bin");
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        await File.WriteAllBytesAsync(path, bytes);
        var (exit, output, error) = await CliRunner.RunAsync("verify", "--json", path);
        var line = CliRunner.JsonLines(output).Single();
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(CliRunner.ReasonCodes(line), Is.EqualTo(new[] { "malformed_evidence" }));
            Assert.That(error, Does.Not.Contain("   at "), "no stack trace");
        });
    }

    [Test]
    public async Task Tdx_quote_forced_to_sev_snp_is_rejected_as_malformed()
    {
        var (exit, output, _) = await CliRunner.RunAsync("verify", "--json", "--tee", "sev-snp", Vectors.Path(Gt2));
        var line = CliRunner.JsonLines(output).Single();
        Assert.That(exit, Is.EqualTo(1));
        Assert.That((string?)line["tee"], Is.EqualTo("sev-snp"));
        Assert.That(CliRunner.ReasonCodes(line), Does.Contain("malformed_evidence"));
    }

    [Test]
    public async Task Missing_input_file_is_an_io_error_with_exit_2()
    {
        var (exit, _, error) = await CliRunner.RunAsync("verify", Path.Combine(_tmp, "absent.dat"));
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("absent.dat"));
    }

    [TestCase("--at", "yesterday")]
    [TestCase("--at", "2026-03-20T10:41:14")]
    [TestCase("--tee", "sgx")]
    [TestCase("--collateral", "/nonexistent/collateral")]
    [TestCase("--trust-simulator", "/nonexistent/pki")]
    [TestCase("--pcs-url", "ftp://example")]
    public async Task Bad_option_values_are_usage_errors_with_exit_2(string option, string value)
    {
        var quote = Path.Combine(_tmp, "q.dat");
        await File.WriteAllBytesAsync(quote, new byte[10]);
        var (exit, _, error) = await CliRunner.RunAsync("verify", option, value, quote);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.StartWith("error:"));
    }

    [Test]
    public async Task No_input_is_a_usage_error()
    {
        var (exit, _, _) = await CliRunner.RunAsync("verify");
        Assert.That(exit, Is.EqualTo(2));
    }

    [Test]
    public async Task Human_output_names_each_failed_check()
    {
        var (_, output, _) = await CliRunner.RunAsync("verify", Vectors.Path(Gt1), "--collateral", Vectors.Path("tdx/go-tdx-guest/collateral"), "--at", "2023-07-01T01:00:00Z");
        Assert.That(output, Does.Contain("rejected (tdx)"));
        Assert.That(output, Does.Contain("tcb_level_not_supported"));
        Assert.That(output, Does.Contain("trailing_bytes"));
    }
}
