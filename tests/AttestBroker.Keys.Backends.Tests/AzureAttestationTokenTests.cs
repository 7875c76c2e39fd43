using System.Buffers.Text;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using AttestBroker.Verification;
using AttestBroker.Verification.Azure;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// Azure Attestation tokens as evidence, against a local HTTPS server serving {instance}/certs in MAA's shape
/// (keys with kid, kty and x5c only). Contract tests: tokens are signed here, not by Azure.
/// </summary>
public sealed class AzureAttestationTokenTests
{
    private const string Nonce = "q2s1b3Jw-nonce-issued-by-the-broker";
    private FakeAttestationService _maa = null!;
    private HttpClient _http = null!;
    private ECDsa _podKey = null!;

    [SetUp]
    public async Task Start()
    {
        _maa = await FakeAttestationService.StartAsync();
        _http = new HttpClient(FakeAttestationService.TrustingHandler());
        _podKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    }

    [TearDown]
    public async Task Stop()
    {
        _podKey.Dispose();
        _http.Dispose();
        await _maa.DisposeAsync();
    }

    private string Issuer => _maa.Issuer;

    private AzureAttestationTokenVerifier Verifier(bool enabled = true) =>
        new(new AzureAttestationOptions { Enabled = enabled, Instance = _maa.Instance, MinRefreshInterval = TimeSpan.Zero }, _http);

    private AzureTokenExpectations Expected => new(Nonce, Jwk.FromPublicKey(_podKey));

    private JsonObject SnpClaims(DateTimeOffset? issuedAt = null)
    {
        var iat = (issuedAt ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds();
        return new JsonObject
        {
            ["iss"] = Issuer,
            ["iat"] = iat,
            ["nbf"] = iat,
            ["exp"] = iat + (8 * 3600),
            ["x-ms-ver"] = "1.0",
            ["x-ms-attestation-type"] = "sevsnpvm",
            ["x-ms-compliance-status"] = "azure-compliant-uvm",
            ["x-ms-runtime"] = new JsonObject { ["nonce"] = Nonce, ["keys"] = new JsonArray(JsonNode.Parse(Jwk.FromPublicKey(_podKey).ToJson())) },
            ["x-ms-sevsnpvm-launchmeasurement"] = new string('A', 96),
            ["x-ms-sevsnpvm-hostdata"] = new string('b', 64),
            ["x-ms-sevsnpvm-is-debuggable"] = false,
            ["x-ms-sevsnpvm-vmpl"] = 0,
            ["x-ms-sevsnpvm-guestsvn"] = 2,
            ["x-ms-sevsnpvm-bootloader-svn"] = 3,
            ["x-ms-sevsnpvm-tee-svn"] = 0,
            ["x-ms-sevsnpvm-snpfw-svn"] = 8,
            ["x-ms-sevsnpvm-microcode-svn"] = 115,
        };
    }

    private static string Codes(VerificationResult r) => string.Join(",", r.Reasons.Select(x => x.Code));

    [Test]
    public async Task Valid_snp_token_is_accepted_with_its_claims_under_the_verifiers_names()
    {
        VerificationResult r = await Verifier().VerifyAsync(_maa.Sign(SnpClaims()), Expected);

        Assert.That(r.IsAccepted, Is.True, Codes(r));
        ClaimSet c = r.Claims;
        Assert.Multiple(() =>
        {
            Assert.That(r.Tee, Is.EqualTo(TeeKind.SevSnp));
            Assert.That(r.Simulated, Is.False);
            Assert.That(r.Notes.Select(n => n.Code), Does.Contain("azure_attestation_token"));
            Assert.That((string?)c["measurement"], Is.EqualTo(new string('a', 96)));
            Assert.That((string?)c["host_data"], Is.EqualTo(new string('b', 64)));
            Assert.That((bool?)c["debug"], Is.False);
            Assert.That((long?)c["vmpl"], Is.Zero);
            Assert.That((long?)c["guest_svn"], Is.EqualTo(2));
            Assert.That(c["reported_tcb"]!.ToJsonString(), Is.EqualTo("""{"bootloader":3,"tee":0,"snp":8,"microcode":115}"""));
            Assert.That((string?)c["evidence_source"], Is.EqualTo("azure_attestation"));
            Assert.That((string?)c["azure_compliance_status"], Is.EqualTo("azure-compliant-uvm"));
        });
    }

    [Test]
    public async Task Tdx_token_claims_map_onto_the_tdx_claim_names()
    {
        JsonObject claims = SnpClaims();
        foreach (string k in claims.Select(p => p.Key).Where(k => k.StartsWith("x-ms-sevsnpvm", StringComparison.Ordinal)).ToList())
        {
            claims.Remove(k);
        }

        claims["x-ms-attestation-type"] = "tdxvm";
        claims["tdx_mrtd"] = new string('1', 96);
        claims["tdx_rtmr0"] = new string('2', 96);
        claims["tdx_td_attributes"] = "0000001000000000";
        claims["tdx_td_attributes_debug"] = false;
        claims["attester_tcb_status"] = "UpToDate";
        VerificationResult r = await Verifier().VerifyAsync(_maa.Sign(claims), Expected);

        Assert.That(r.IsAccepted, Is.True, Codes(r));
        Assert.Multiple(() =>
        {
            Assert.That(r.Tee, Is.EqualTo(TeeKind.Tdx));
            Assert.That((string?)r.Claims["mr_td"], Is.EqualTo(new string('1', 96)));
            Assert.That((string?)r.Claims["rtmr0"], Is.EqualTo(new string('2', 96)));
            Assert.That((string?)r.Claims["td_attributes"], Is.EqualTo("0000001000000000"));
            Assert.That((bool?)r.Claims["debug"], Is.False);
            Assert.That((string?)r.Claims["tcb_status"], Is.EqualTo("UpToDate"));
        });
    }

    [Test]
    public async Task Token_from_another_issuer_is_rejected()
    {
        JsonObject claims = SnpClaims();
        claims["iss"] = "https://sharedeus2.eus2.attest.azure.net";
        VerificationResult r = await Verifier().VerifyAsync(_maa.Sign(claims), Expected);
        Assert.That(Codes(r), Is.EqualTo("token_issuer_mismatch"));
    }

    [Test]
    public async Task Expired_token_is_rejected()
    {
        VerificationResult r = await Verifier().VerifyAsync(_maa.Sign(SnpClaims(DateTimeOffset.UtcNow.AddHours(-9))), Expected);
        Assert.That(Codes(r), Is.EqualTo("token_expired"));
    }

    [Test]
    public async Task Token_with_a_bad_signature_is_rejected_before_its_claims_are_read()
    {
        string token = _maa.Sign(SnpClaims());
        string forged = token[..token.LastIndexOf('.')] + "." + Base64Url.EncodeToString(new byte[256]);
        VerificationResult r = await Verifier().VerifyAsync(forged, Expected);
        Assert.That(Codes(r), Is.EqualTo("token_signature_invalid"));
        Assert.That(r.Claims.Count, Is.Zero);
    }

    [Test]
    public async Task Unknown_kid_refreshes_the_signing_keys_once_and_then_verifies()
    {
        AzureAttestationTokenVerifier verifier = Verifier();
        Assert.That((await verifier.VerifyAsync(_maa.Sign(SnpClaims()), Expected)).IsAccepted, Is.True);
        Assert.That(verifier.KeyFetches, Is.EqualTo(1));

        string rolled = _maa.Publish("key-b"); // the instance rolled its signing key
        VerificationResult r = await verifier.VerifyAsync(_maa.Sign(SnpClaims(), rolled), Expected);
        Assert.That(r.IsAccepted, Is.True, Codes(r));
        Assert.That(verifier.KeyFetches, Is.EqualTo(2));

        Assert.That((await verifier.VerifyAsync(_maa.Sign(SnpClaims(), rolled), Expected)).IsAccepted, Is.True);
        Assert.That(verifier.KeyFetches, Is.EqualTo(2), "a known kid is served from the cache");
    }

    [Test]
    public async Task Kid_that_the_instance_does_not_publish_is_rejected_after_a_refresh()
    {
        using var stranger = RSA.Create(2048);
        AzureAttestationTokenVerifier verifier = Verifier();
        VerificationResult r = await verifier.VerifyAsync(FakeAttestationService.Sign(SnpClaims(), "key-z", stranger), Expected);
        Assert.That(Codes(r), Is.EqualTo("token_key_unknown"));
        Assert.That(verifier.KeyFetches, Is.EqualTo(2));
    }

    [Test]
    public async Task Nonce_or_key_not_bound_in_the_runtime_claims_is_rejected()
    {
        JsonObject claims = SnpClaims();
        claims["x-ms-runtime"]!["nonce"] = "another-nonce";
        Assert.That(Codes(await Verifier().VerifyAsync(_maa.Sign(claims), Expected)), Is.EqualTo("nonce_mismatch"));

        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        VerificationResult r = await Verifier().VerifyAsync(_maa.Sign(SnpClaims()), new AzureTokenExpectations(Nonce, Jwk.FromPublicKey(other)));
        Assert.That(Codes(r), Is.EqualTo("key_binding_mismatch"));

        JsonObject none = SnpClaims();
        none.Remove("x-ms-runtime");
        Assert.That(Codes(await Verifier().VerifyAsync(_maa.Sign(none), Expected)), Does.Contain("nonce_mismatch"));
    }

    [Test]
    public async Task Debuggable_guest_and_malformed_claims_are_visible_to_policy_or_rejected()
    {
        JsonObject claims = SnpClaims();
        claims["x-ms-sevsnpvm-is-debuggable"] = true;
        VerificationResult r = await Verifier().VerifyAsync(_maa.Sign(claims), Expected);
        Assert.That(r.IsAccepted, Is.True);
        Assert.That((bool?)r.Claims["debug"], Is.True, "the release policy's debug rule decides");

        claims["x-ms-sevsnpvm-launchmeasurement"] = "zz";
        Assert.That(Codes(await Verifier().VerifyAsync(_maa.Sign(claims), Expected)), Is.EqualTo("token_claims_invalid"));
    }

    [Test]
    public async Task Azure_tokens_are_refused_unless_turned_on()
    {
        VerificationResult r = await Verifier(enabled: false).VerifyAsync(_maa.Sign(SnpClaims()), Expected);
        Assert.That(Codes(r), Is.EqualTo("azure_tokens_disabled"));
        Assert.That(_maa.Service.Requests, Is.Empty);
        Assert.That(new AzureAttestationOptions().Enabled, Is.False);
    }

    [Test]
    public async Task Tdx_advisory_ids_map_onto_advisory_ids_and_a_malformed_list_is_rejected()
    {
        JsonObject claims = _maa.TdxClaims(DateTimeOffset.UtcNow, Nonce, new string('1', 96), JsonNode.Parse(Jwk.FromPublicKey(_podKey).ToJson())!);
        claims["attester_advisory_ids"] = new JsonArray("INTEL-SA-00837", "INTEL-SA-00960");
        VerificationResult r = await Verifier().VerifyAsync(_maa.Sign(claims), Expected);
        Assert.That(r.IsAccepted, Is.True, Codes(r));
        Assert.That(r.Claims["advisory_ids"]!.ToJsonString(), Is.EqualTo("""["INTEL-SA-00837","INTEL-SA-00960"]"""));

        claims["attester_advisory_ids"] = "INTEL-SA-00837";
        Assert.That(Codes(await Verifier().VerifyAsync(_maa.Sign(claims), Expected)), Is.EqualTo("token_claims_invalid"));
    }
}
