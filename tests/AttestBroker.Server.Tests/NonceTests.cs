using System.Security.Cryptography;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Replayed_nonce_is_409
{
    [Test]
    public async Task The_same_challenge_sent_twice_is_granted_once_then_409_nonce_already_used()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var json = RunningBroker.AttestJson(challenge, Shared.Env.Evidence(TeeKind.Tdx, nonce, jwk), jwk, Shared.TdxKey);
        var (first, _, _) = await Shared.Broker.PostAsync("/v1/attest", json);
        var (second, body, type) = await Shared.Broker.PostAsync("/v1/attest", json);
        Assert.That(first, Is.EqualTo(200));
        Assert.That((second, Shared.Code(body), type), Is.EqualTo((409, ProblemCodes.NonceUsed, "application/problem+json")));
    }
}

[TestFixture]
public sealed class Expired_nonce_is_410
{
    [Test]
    public async Task A_challenge_used_after_its_lifetime_is_410_nonce_expired()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        Shared.Broker.Time.Advance(TimeSpan.FromSeconds(121));
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge, Shared.Env.Evidence(TeeKind.Tdx, nonce, jwk), jwk, Shared.TdxKey));
        Assert.That((status, Shared.Code(body)), Is.EqualTo((410, ProblemCodes.NonceExpired)));
    }
}

[TestFixture]
public sealed class Forged_challenge_is_400
{
    [Test]
    public async Task A_challenge_with_one_flipped_bit_is_400_invalid_challenge()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var raw = RunningBroker.Base64UrlDecode(challenge);
        raw[20] ^= 0x01;
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", RunningBroker.AttestJson(RunningBroker.Base64UrlEncode(raw), Shared.Env.Evidence(TeeKind.Tdx, nonce, jwk), jwk, Shared.TdxKey));
        Assert.That((status, Shared.Code(body)), Is.EqualTo((400, ProblemCodes.InvalidChallenge)));
    }
}

[TestFixture]
public sealed class Nonce_service_tokens_are_authentic_single_tee_and_time_limited
{
    private static readonly DateTimeOffset T0 = new(2026, 5, 1, 0, 0, 0, TimeSpan.Zero);

    [Test]
    public void An_issued_token_opens_to_the_same_nonce_and_tee()
    {
        using var service = new NonceService(new byte[32], new ManualTime(T0), TimeSpan.FromMinutes(2));
        var (issued, token) = service.Issue(TeeKind.SevSnp);
        Assert.That(service.TryOpen(token, out var opened, out _), Is.True);
        Assert.That((opened!.Nonce, opened.Tee, opened.ExpiresAt), Is.EqualTo((issued.Nonce, TeeKind.SevSnp, T0.AddMinutes(2))));
    }

    [Test]
    public void A_token_from_a_broker_with_another_secret_is_invalid()
    {
        using var a = new NonceService(new byte[32], new ManualTime(T0), TimeSpan.FromMinutes(2));
        var secret = new byte[32];
        secret[0] = 1;
        using var b = new NonceService(secret, new ManualTime(T0), TimeSpan.FromMinutes(2));
        var (_, token) = a.Issue(TeeKind.Tdx);
        Assert.That(b.TryOpen(token, out _, out var error), Is.False);
        Assert.That(error, Is.EqualTo(ChallengeError.Invalid));
    }

    [Test]
    public void Every_single_bit_flip_of_a_token_is_invalid()
    {
        using var service = new NonceService(new byte[32], new ManualTime(T0), TimeSpan.FromMinutes(2));
        var (_, token) = service.Issue(TeeKind.Tdx);
        var raw = RunningBroker.Base64UrlDecode(token);
        for (var bit = 0; bit < raw.Length * 8; bit++)
        {
            var copy = (byte[])raw.Clone();
            copy[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.That(service.TryOpen(RunningBroker.Base64UrlEncode(copy), out _, out var error), Is.False, $"bit {bit}");
            Assert.That(error, Is.EqualTo(ChallengeError.Invalid));
        }
    }

    [Test]
    public void A_token_at_its_expiry_is_expired()
    {
        var time = new ManualTime(T0);
        using var service = new NonceService(new byte[32], time, TimeSpan.FromMinutes(2));
        var (_, token) = service.Issue(TeeKind.Tdx);
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.That(service.TryOpen(token, out _, out var error), Is.False);
        Assert.That(error, Is.EqualTo(ChallengeError.Expired));
    }

    [Test]
    public void A_token_in_another_spelling_of_the_same_bytes_is_invalid()
    {
        using var service = new NonceService(new byte[32], new ManualTime(T0), TimeSpan.FromMinutes(2));
        var (_, token) = service.Issue(TeeKind.Tdx);
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        var last = Alphabet.IndexOf(token[^1], StringComparison.Ordinal);

        Assert.Multiple(() =>
        {
            // 74 bytes are 99 characters: the last one carries 2 unused low bits, which a lenient decoder ignores.
            Assert.That(token, Has.Length.EqualTo(99));
            Assert.That(service.TryOpen(token[..^1] + Alphabet[last ^ 1], out _, out var e1), Is.False);
            Assert.That(e1, Is.EqualTo(ChallengeError.Invalid));
            Assert.That(service.TryOpen(token + "=", out _, out _), Is.False);
            Assert.That(service.TryOpen(token[..50] + " " + token[51..], out _, out _), Is.False);
            Assert.That(service.TryOpen(token[..50] + "+" + token[51..], out _, out _), Is.False);
            Assert.That(service.TryOpen(token, out _, out _), Is.True);
        });
    }

    [TestCase("")]
    [TestCase("not base64!")]
    [TestCase("AQEAAAAAawuImf5fAA9bxS62L9HBY1iXAek9uSs45dBheWwweAbBo6FuRuz6Vpc7kQ9FP1jspr3cmhMfoXZc3-Mf__wor1jj7y")]
    public void Garbage_is_invalid_not_an_exception(string token)
    {
        using var service = new NonceService(new byte[32], new ManualTime(T0), TimeSpan.FromMinutes(2));
        Assert.That(service.TryOpen(token, out _, out var error), Is.False);
        Assert.That(error, Is.EqualTo(ChallengeError.Invalid));
    }
}
