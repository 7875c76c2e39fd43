using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;
using static AttestBroker.Policy.Tests.Asserts;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Identity_bound_into_launch_data
{
    private const string Bind = "requester:\n  namespaces: [ml-prod]\n  bindToLaunchData: true";
    private static readonly RequesterIdentity Runner = new("ml-prod", "llm-runner");

    [Test]
    public void The_document_is_the_exact_compact_json_and_the_digest_its_sha256()
    {
        const string expected = "{\"version\":1,\"namespace\":\"ml-prod\",\"serviceAccount\":\"llm-runner\"}";
        Assert.Multiple(() =>
        {
            Assert.That(Encoding.UTF8.GetString(IdentityBinding.Document("ml-prod", "llm-runner")), Is.EqualTo(expected));
            Assert.That(IdentityBinding.Digest("ml-prod", "llm-runner"), Is.EqualTo(SHA256.HashData(Encoding.UTF8.GetBytes(expected))));
            Assert.That(IdentityBinding.HostData("ml-prod", "llm-runner"), Has.Length.EqualTo(32));
            Assert.That(IdentityBinding.MrConfigId("ml-prod", "llm-runner")[..32], Is.EqualTo(IdentityBinding.Digest("ml-prod", "llm-runner")));
            Assert.That(IdentityBinding.MrConfigId("ml-prod", "llm-runner")[32..], Is.EqualTo(new byte[16]));
        });
    }

    [TestCase("ML-Prod", "sa")]
    [TestCase("ml\"prod", "sa")]
    [TestCase("ml-prod", "sa\",\"x\":\"y")]
    [TestCase("", "sa")]
    [TestCase("ml-prod", "")]
    public void Names_kubernetes_would_refuse_cannot_make_a_document(string ns, string sa) =>
        Assert.Throws<ArgumentException>(() => IdentityBinding.Document(ns, sa));

    [Test]
    public void Tdx_mrconfigid_that_binds_the_requester_is_granted()
    {
        var claims = TdxClaims();
        claims["mr_config_id"] = Convert.ToHexStringLower(IdentityBinding.MrConfigId("ml-prod", "llm-runner"));
        Granted(Eval(TdxPolicy(Bind), TdxInput(claims) with { Requester = Runner }));
    }

    [Test]
    public void Snp_host_data_that_binds_the_requester_is_granted()
    {
        var claims = SnpClaims();
        claims["host_data"] = Convert.ToHexStringLower(IdentityBinding.HostData("ml-prod", "llm-runner"));
        Granted(Eval(SnpPolicy(Bind), SnpInput(claims) with { Requester = Runner }));
    }

    [Test]
    public void Launch_data_bound_to_another_service_account_is_denied_with_identity_not_bound()
    {
        var claims = SnpClaims();
        claims["host_data"] = Convert.ToHexStringLower(IdentityBinding.HostData("ml-prod", "intruder"));
        var expected = Convert.ToHexStringLower(IdentityBinding.HostData("ml-prod", "llm-runner"));
        DeniedBy(Eval(SnpPolicy(Bind), SnpInput(claims) with { Requester = Runner }), PolicyCodes.IdentityNotBound, "requester.bindToLaunchData", "host_data",
            "[" + Q(expected) + "]", Q((string)claims["host_data"]!));
    }

    [Test]
    public void Tdx_launch_data_not_binding_the_requester_is_denied_with_the_mrconfigid_claim() =>
        DeniedBy(Eval(TdxPolicy(Bind), TdxInput() with { Requester = Runner }), PolicyCodes.IdentityNotBound, "requester.bindToLaunchData", "mr_config_id", actual: Q(MrConfigId));

    [Test]
    public void Without_a_known_identity_binding_is_denied_as_well_as_the_namespace()
    {
        var d = Eval(TdxPolicy(Bind), TdxInput());
        Assert.That(d.Granted, Is.False);
        Assert.That(d.Failures.Select(f => f.Code), Is.EquivalentTo(new[] { PolicyCodes.IdentityMismatch, PolicyCodes.IdentityNotBound }));
    }

    [Test]
    public void Bind_alone_is_a_valid_requester_section_and_a_false_bind_alone_is_not()
    {
        Assert.DoesNotThrow(() => ReleasePolicy.Parse(TdxPolicy("requester:\n  bindToLaunchData: true")));
        var ex = Assert.Throws<PolicyFormatException>(() => ReleasePolicy.Parse(TdxPolicy("requester:\n  bindToLaunchData: false")));
        Assert.That(ex!.Message, Does.Contain("requester"));
    }
}
