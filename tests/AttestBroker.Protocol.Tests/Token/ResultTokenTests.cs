using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Token;

[TestFixture]
public sealed class ResultTokenTests : IDisposable
{
    private const string Issuer = "https://broker.attest.example";
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 1, 0, 0, TimeSpan.Zero);

    private readonly ECDsa _signer = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _otherSigner = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDiffieHellman _pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    public void Dispose()
    {
        _signer.Dispose();
        _otherSigner.Dispose();
        _pod.Dispose();
    }

    private Jwk PodKey => Jwk.FromPublicKey(_pod);

    private AttestBroker.Protocol.Jwks Keys => AttestBroker.Protocol.Jwks.FromSigningKeys([_signer]);

    private string NewToken(TimeSpan? lifetime = null, JsonObject? claims = null) => ResultToken.Create(
        new ResultTokenDescriptor
        {
            Issuer = Issuer,
            Subject = "system:serviceaccount:ml:loader",
            ConfirmationKey = PodKey,
            Claims = claims ?? new JsonObject { ["tee"] = "tdx", ["debug"] = false, ["tcb_status"] = "UpToDate" },
            Lifetime = lifetime ?? ResultToken.DefaultLifetime,
        },
        _signer,
        Now);

    private static string Resign(string token, ECDsa key, Func<string, string>? header = null, Func<string, string>? payload = null)
    {
        var parts = token.Split('.');
        var h = Encoding.UTF8.GetString(TestSupport.UnB64(parts[0]));
        var p = Encoding.UTF8.GetString(TestSupport.UnB64(parts[1]));
        var input = TestSupport.B64Json(header?.Invoke(h) ?? h) + "." + TestSupport.B64Json(payload?.Invoke(p) ?? p);
        var sig = key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return input + "." + TestSupport.B64(sig);
    }

    private ProtocolError VerifyError(string token, DateTimeOffset? at = null, Jwk? presented = null) =>
        TestSupport.ErrorOf(() => ResultToken.Verify(token, Keys, Issuer, presented ?? PodKey, at ?? Now));

    [Test]
    public void Fresh_token_verifies_and_carries_its_claims()
    {
        var claims = ResultToken.Verify(NewToken(), Keys, Issuer, PodKey, Now.AddMinutes(1));

        Assert.Multiple(() =>
        {
            Assert.That(claims.Issuer, Is.EqualTo(Issuer));
            Assert.That(claims.Subject, Is.EqualTo("system:serviceaccount:ml:loader"));
            Assert.That(claims.IssuedAt, Is.EqualTo(Now));
            Assert.That(claims.NotBefore, Is.EqualTo(Now));
            Assert.That(claims.Expires, Is.EqualTo(Now.AddMinutes(5)));
            Assert.That(claims.ConfirmationThumbprint, Is.EqualTo(PodKey.Thumbprint()));
            Assert.That(claims.KeyId, Is.EqualTo(Jwk.FromPublicKey(_signer).Thumbprint()));
            Assert.That(claims.TokenId, Has.Length.EqualTo(22));
            Assert.That(claims.Claims["tee"]!.GetValue<string>(), Is.EqualTo("tdx"));
            Assert.That(claims.Claims["debug"]!.GetValue<bool>(), Is.False);
        });
    }

    [Test]
    public void Token_header_is_es256_with_the_signing_key_thumbprint_as_kid_and_the_result_type()
    {
        var header = Encoding.UTF8.GetString(TestSupport.UnB64(NewToken().Split('.')[0]));
        Assert.That(header, Is.EqualTo($"{{\"alg\":\"ES256\",\"kid\":\"{Jwk.FromPublicKey(_signer).Thumbprint()}\",\"typ\":\"attest-result+jwt\"}}"));
    }

    [Test]
    public void Token_signed_with_the_published_kid_given_verifies_and_with_another_kid_is_rejected_with_token_key_unknown()
    {
        var descriptor = new ResultTokenDescriptor { Issuer = Issuer, ConfirmationKey = PodKey };
        var kid = Keys.Keys[0].KeyId!;

        Assert.Multiple(() =>
        {
            Assert.That(ResultToken.Verify(ResultToken.Create(descriptor, _signer, kid, Now), Keys, Issuer, PodKey, Now).KeyId, Is.EqualTo(kid));
            Assert.That(VerifyError(ResultToken.Create(descriptor, _signer, AttestBroker.Protocol.Jwks.FromSigningKeys([_otherSigner]).Keys[0].KeyId!, Now)), Is.EqualTo(ProtocolError.TokenKeyUnknown));
        });
    }

    [Test]
    public void Token_payload_binds_cnf_jkt_to_the_pod_key_thumbprint()
    {
        var payload = JsonNode.Parse(TestSupport.UnB64(NewToken().Split('.')[1]))!;
        Assert.Multiple(() =>
        {
            Assert.That(payload["cnf"]!["jkt"]!.GetValue<string>(), Is.EqualTo(PodKey.Thumbprint()));
            Assert.That(payload["exp"]!.GetValue<long>() - payload["iat"]!.GetValue<long>(), Is.EqualTo(300));
        });
    }

    [Test]
    public void Each_token_has_a_new_jti()
    {
        var a = ResultToken.Verify(NewToken(), Keys, Issuer, PodKey, Now).TokenId;
        var b = ResultToken.Verify(NewToken(), Keys, Issuer, PodKey, Now).TokenId;
        Assert.That(a, Is.Not.EqualTo(b));
    }

    [Test]
    public void Expired_token_is_rejected_with_token_expired()
    {
        var token = NewToken();
        Assert.Multiple(() =>
        {
            Assert.That(VerifyError(token, Now.AddMinutes(5).Add(ResultToken.DefaultClockSkew)), Is.EqualTo(ProtocolError.TokenExpired));
            Assert.That(VerifyError(token, Now.AddHours(2)), Is.EqualTo(ProtocolError.TokenExpired));
        });
    }

    [Test]
    public void Token_just_past_exp_but_within_the_skew_is_accepted() =>
        Assert.That(ResultToken.Verify(NewToken(), Keys, Issuer, PodKey, Now.AddMinutes(5).AddSeconds(10)).Issuer, Is.EqualTo(Issuer));

    [Test]
    public void Token_used_before_nbf_beyond_the_skew_is_rejected_with_token_not_yet_valid() =>
        Assert.That(VerifyError(NewToken(), Now.AddMinutes(-1)), Is.EqualTo(ProtocolError.TokenNotYetValid));

    [Test]
    public void Token_used_before_nbf_within_the_skew_is_accepted() =>
        Assert.That(ResultToken.Verify(NewToken(), Keys, Issuer, PodKey, Now.AddSeconds(-20)).Issuer, Is.EqualTo(Issuer));

    [Test]
    public void Flipped_signature_bit_is_rejected_with_token_signature_invalid() =>
        Assert.That(VerifyError(TestSupport.FlipBitInSegment(NewToken(), 2, 40, 2)), Is.EqualTo(ProtocolError.TokenSignatureInvalid));

    [Test]
    public void Changed_payload_with_the_old_signature_is_rejected_with_token_signature_invalid()
    {
        var parts = NewToken().Split('.');
        var payload = Encoding.UTF8.GetString(TestSupport.UnB64(parts[1])).Replace("\"debug\":false", "\"debug\":true", StringComparison.Ordinal);
        parts[1] = TestSupport.B64Json(payload);
        Assert.That(VerifyError(string.Join('.', parts)), Is.EqualTo(ProtocolError.TokenSignatureInvalid));
    }

    [Test]
    public void Token_signed_by_another_key_under_the_published_kid_is_rejected_with_token_signature_invalid() =>
        Assert.That(VerifyError(Resign(NewToken(), _otherSigner)), Is.EqualTo(ProtocolError.TokenSignatureInvalid));

    [Test]
    public void Token_whose_kid_is_not_in_the_jwks_is_rejected_with_token_key_unknown()
    {
        var otherKid = Jwk.FromPublicKey(_otherSigner).Thumbprint();
        var token = ResultToken.Create(new ResultTokenDescriptor { Issuer = Issuer, ConfirmationKey = PodKey }, _otherSigner, Now);
        Assert.Multiple(() =>
        {
            Assert.That(VerifyError(token), Is.EqualTo(ProtocolError.TokenKeyUnknown));
            Assert.That(VerifyError(Resign(NewToken(), _signer, h => h.Replace(Jwk.FromPublicKey(_signer).Thumbprint(), otherKid, StringComparison.Ordinal))), Is.EqualTo(ProtocolError.TokenKeyUnknown));
            Assert.That(VerifyError(Resign(NewToken(), _signer, _ => "{\"alg\":\"ES256\",\"typ\":\"attest-result+jwt\"}")), Is.EqualTo(ProtocolError.TokenKeyUnknown));
        });
    }

    [Test]
    public void Token_presented_with_another_pod_key_is_rejected_with_token_confirmation_mismatch()
    {
        using var thief = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        Assert.That(VerifyError(NewToken(), presented: Jwk.FromPublicKey(thief)), Is.EqualTo(ProtocolError.TokenConfirmationMismatch));
    }

    [Test]
    public void Token_from_another_issuer_is_rejected_with_token_issuer_mismatch() =>
        Assert.That(
            TestSupport.ErrorOf(() => ResultToken.Verify(NewToken(), Keys, "https://other.example", PodKey, Now)),
            Is.EqualTo(ProtocolError.TokenIssuerMismatch));

    [TestCase("none")]
    [TestCase("HS256")]
    [TestCase("ES384")]
    [TestCase("RS256")]
    public void Token_with_another_alg_is_rejected_with_token_algorithm_not_allowed(string alg) =>
        Assert.That(VerifyError(Resign(NewToken(), _signer, h => h.Replace("ES256", alg, StringComparison.Ordinal))), Is.EqualTo(ProtocolError.TokenAlgorithmNotAllowed));

    [TestCase("JWT")]
    [TestCase("at+jwt")]
    public void Token_with_another_typ_is_rejected_with_token_type_invalid(string typ) =>
        Assert.That(VerifyError(Resign(NewToken(), _signer, h => h.Replace("attest-result+jwt", typ, StringComparison.Ordinal))), Is.EqualTo(ProtocolError.TokenTypeInvalid));

    [Test]
    public void Signed_token_without_cnf_is_rejected_with_token_malformed() =>
        Assert.That(VerifyError(Resign(NewToken(), _signer, payload: p => p.Replace("\"cnf\"", "\"cnx\"", StringComparison.Ordinal))), Is.EqualTo(ProtocolError.TokenMalformed));

    [Test]
    public void Signed_token_with_a_fractional_exp_is_rejected_with_token_malformed() =>
        Assert.That(VerifyError(Resign(NewToken(), _signer, payload: p => p.Replace($"\"exp\":{Now.AddMinutes(5).ToUnixTimeSeconds()}", $"\"exp\":{Now.AddMinutes(5).ToUnixTimeSeconds()}.5", StringComparison.Ordinal))), Is.EqualTo(ProtocolError.TokenMalformed));

    [Test]
    public void Signed_token_whose_issuer_holds_an_escaped_lone_surrogate_is_rejected_with_token_malformed() =>
        Assert.That(VerifyError(Resign(NewToken(), _signer, payload: p => p.Replace(Issuer, "\\ud800", StringComparison.Ordinal))), Is.EqualTo(ProtocolError.TokenMalformed));

    [Test]
    public void Token_header_that_is_not_utf8_is_rejected_with_token_malformed() =>
        Assert.That(VerifyError(TestSupport.ReplaceSegment(NewToken(), 0, [0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), Is.EqualTo(ProtocolError.TokenMalformed));

    [Test]
    public void Signing_with_a_p384_key_is_refused_with_token_parameters_invalid()
    {
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Assert.That(
            TestSupport.ErrorOf(() => ResultToken.Create(new ResultTokenDescriptor { Issuer = Issuer, ConfirmationKey = PodKey }, p384, Now)),
            Is.EqualTo(ProtocolError.TokenParametersInvalid));
    }

    [Test]
    public void Lifetime_over_one_hour_is_refused_with_token_parameters_invalid() =>
        Assert.That(TestSupport.ErrorOf(() => NewToken(TimeSpan.FromHours(2))), Is.EqualTo(ProtocolError.TokenParametersInvalid));

    [Test]
    public void Random_token_strings_fail_only_with_protocol_exception()
    {
        var keys = Keys;
        var pod = PodKey;
        Gen.String[Gen.Char["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\""], 0, 300].Sample(s =>
        {
            Assert.Throws<ProtocolException>(() => ResultToken.Verify(s, keys, Issuer, pod, Now));
        }, iter: 3000);
    }

    [Test]
    public void Mutated_tokens_fail_only_with_protocol_exception()
    {
        var keys = Keys;
        var pod = PodKey;
        var original = NewToken();
        Gen.Select(Gen.Int[0, original.Length - 1], Gen.Char["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."]).Array[1, 3].Sample(muts =>
        {
            var chars = original.ToCharArray();
            foreach (var (i, c) in muts)
            {
                chars[i] = c;
            }

            var s = new string(chars);
            if (s != original)
            {
                Assert.Throws<ProtocolException>(() => ResultToken.Verify(s, keys, Issuer, pod, Now));
            }
        }, iter: 2000);
    }
}
