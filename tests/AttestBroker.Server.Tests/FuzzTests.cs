using System.Security.Cryptography;
using System.Text;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using CsCheck;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Arbitrary_request_bodies_get_a_typed_problem_never_an_exception
{
    private static BrokerService Service => Shared.Broker.Host.App.Services.GetRequiredService<BrokerService>();

    [Test]
    public void Random_bytes_on_attest_are_400_malformed_request()
    {
        Gen.Byte.Array[0, 2048].Sample(body =>
        {
            var outcome = Service.AttestAsync(body, "fuzz", CancellationToken.None).GetAwaiter().GetResult();
            return outcome.Problem is { Status: 400 };
        }, iter: 300);
    }

    [Test]
    public void Random_bytes_on_challenge_are_400_malformed_request()
    {
        Gen.Byte.Array[0, 512].Sample(body => Service.Challenge(body).Problem is { Status: 400, Code: ProblemCodes.MalformedRequest }, iter: 300);
    }

    [Test]
    public async Task Single_character_edits_of_a_valid_request_get_a_problem_or_a_grant_never_an_exception()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var json = RunningBroker.AttestJson(challenge, Shared.Env.Evidence(TeeKind.Tdx, nonce, jwk), jwk, Shared.TdxKey);
        Gen.Select(Gen.Int[0, json.Length - 1], Gen.Char['!', '~']).Sample((position, c) =>
        {
            var edited = new StringBuilder(json) { [position] = c }.ToString();
            var outcome = Service.AttestAsync(Encoding.UTF8.GetBytes(edited), "fuzz", CancellationToken.None).GetAwaiter().GetResult();
            // The same challenge is reused, so after the first valid use every later one is a replay (409).
            return outcome.Body is not null || outcome.Problem is { Status: 400 or 403 or 404 or 409 };
        }, iter: 150);
    }
}
