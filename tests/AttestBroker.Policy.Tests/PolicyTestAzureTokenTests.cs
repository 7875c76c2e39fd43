using System.Buffers.Text;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using NUnit.Framework;

namespace AttestBroker.Policy.Tests;

/// <summary>
/// attestbroker policy test --azure-token: a Microsoft Azure Attestation token (signed here by a test key, as a saved
/// {instance}/certs names it; not by Azure) appraised offline against a policy.
/// </summary>
[TestFixture]
public sealed class Policy_test_command_on_an_azure_attestation_token
{
    private const string Instance = "https://myprovider.eus2.attest.azure.net";
    private const string At = "2026-05-01T12:00:00Z";
    private static readonly string Measurement = new('c', 96);

    private string _tmp = null!;
    private RSA _signingKey = null!;
    private string _jwks = null!;

    [SetUp]
    public void SetUp()
    {
        _tmp = Directory.CreateTempSubdirectory("ab-policy-azure-").FullName;
        _signingKey = RSA.Create(2048);
        var at = DateTimeOffset.Parse(At, System.Globalization.CultureInfo.InvariantCulture);
        using var cert = new CertificateRequest("CN=maa", _signingKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1).CreateSelfSigned(at.AddDays(-10), at.AddDays(10));
        _jwks = Write("certs.json", new JsonObject { ["keys"] = new JsonArray(new JsonObject { ["kid"] = "k1", ["kty"] = "RSA", ["x5c"] = new JsonArray(Convert.ToBase64String(cert.RawData)) }) }.ToJsonString());
    }

    [TearDown]
    public void TearDown()
    {
        _signingKey.Dispose();
        Directory.Delete(_tmp, recursive: true);
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_tmp, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string Token(RSA? signer = null)
    {
        long iat = DateTimeOffset.Parse(At, System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeSeconds() - 60;
        var claims = new JsonObject
        {
            ["iss"] = Instance, ["iat"] = iat, ["nbf"] = iat, ["exp"] = iat + (8 * 3600), ["x-ms-ver"] = "1.0",
            ["x-ms-attestation-type"] = "sevsnpvm", ["x-ms-runtime"] = new JsonObject { ["nonce"] = "from-some-challenge" },
            ["x-ms-sevsnpvm-launchmeasurement"] = Measurement, ["x-ms-sevsnpvm-is-debuggable"] = false, ["x-ms-sevsnpvm-vmpl"] = 0,
        };
        var header = Base64Url.EncodeToString(Encoding.UTF8.GetBytes("""{"alg":"RS256","kid":"k1","typ":"JWT"}"""));
        var input = header + "." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        return input + "." + Base64Url.EncodeToString((signer ?? _signingKey).SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
    }

    private string Policy(bool optIn) => Write("p.yaml", $"name: azure\nversion: 1\ntee: [sev-snp]\nallowAzureAttestation: {(optIn ? "true" : "false")}\nsnp:\n  measurement: [{Measurement}]\n");

    private Task<(int Exit, string Out, string Err)> RunAsync(string policy, string token, params string[] more) =>
        PolicyCli.RunAsync(["policy", "test", "--policy", policy, "--azure-token", Write("token.jwt", token), "--azure-instance", Instance, "--azure-jwks", _jwks, "--at", At, "--json", .. more]);

    [Test]
    public async Task An_opt_in_policy_grants_the_token_with_exit_0_and_says_the_binding_was_not_checked()
    {
        var (exit, output, err) = await RunAsync(Policy(optIn: true), Token());
        Assert.That(exit, Is.EqualTo(0), output + err);
        var o = JsonNode.Parse(output)!;
        Assert.That((string?)o["decision"], Is.EqualTo("granted"));
        Assert.That((string?)o["binding"], Does.StartWith("not checked"));
        Assert.That((string?)o["verification"]!["claims"]!["evidence_source"], Is.EqualTo("azure_attestation"));
    }

    [Test]
    public async Task A_policy_without_the_opt_in_denies_with_azure_attestation_not_allowed_and_exit_1()
    {
        var (exit, output, _) = await RunAsync(Policy(optIn: false), Token());
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(PolicyCli.Failures(output), Does.Contain(("azure_attestation_not_allowed", "allowAzureAttestation")));
    }

    [Test]
    public async Task A_token_signed_by_another_key_is_denied_as_a_verification_failure()
    {
        using var forger = RSA.Create(2048);
        var (exit, output, _) = await RunAsync(Policy(optIn: true), Token(forger));
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(JsonNode.Parse(output)!["failures"]!.AsArray().Select(f => (string?)f!["actual"]), Does.Contain("token_signature_invalid"));
    }

    [Test]
    public async Task Azure_token_without_an_instance_or_together_with_evidence_is_a_usage_error()
    {
        var token = Write("t.jwt", Token());
        var (exit, _, err) = await PolicyCli.RunAsync("policy", "test", "--policy", Policy(optIn: true), "--azure-token", token);
        Assert.That((exit, err), Is.EqualTo((2, err)));
        Assert.That(err, Does.Contain("--azure-instance"));

        (exit, _, err) = await PolicyCli.RunAsync("policy", "test", "--policy", Policy(optIn: true), "--azure-token", token, "--azure-instance", Instance, "--evidence", token);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(err, Does.Contain("not both"));
    }
}
