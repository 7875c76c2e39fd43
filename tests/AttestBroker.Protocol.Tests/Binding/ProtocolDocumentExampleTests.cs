using System.Security.Cryptography;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Binding;

/// <summary>The JWE and token printed in docs/protocol.md stay valid: these are the same strings.</summary>
[TestFixture]
public sealed class ProtocolDocumentExampleTests
{
    // RFC 7518 Appendix C's "Bob" key: public in the RFC, so the document's JWE can be opened by any reader.
    private const string BobX = "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ";
    private const string BobY = "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck";
    private const string BobD = "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw";

    private const string ExampleJwe =
        "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZHQ00iLCJraWQiOiJtb2RlbC1rZXktMSIsImVwayI6eyJrdHkiOiJFQyIsImNydiI6IlAtMjU2IiwieCI6IkJaNFdiXzNaS1paQ2M1Uk84NjBIVnZGQlRPUWh0VHJQZkJnMHVjRVkydWsiLCJ5IjoiOVc5SF92blFYQ04xZ3FLOG5yVnZzZlRGRDJmYmxTNGg0eDh5Tml0TkRGdyJ9fQ.8F9D4AxXDCW1vZv0nx9jebMOtBm80rGDPeWVxRYWwC5CxAzuGRmt7g.cwdmF96VUz6D1Sh5.2K5RY5JdxAblU19Sf8ewIxOG_ELmbmunGz-8DewhZZ4.rmqqr4yb1wQs8BuAGd1WTw";

    private const string ExampleToken =
        "eyJhbGciOiJFUzI1NiIsImtpZCI6IkcwUTNCX2JTc3M2WGxDTE10ck4ya1lTTEppVlQxRVRST25KN3dDWllwdVkiLCJ0eXAiOiJhdHRlc3QtcmVzdWx0K2p3dCJ9.eyJpc3MiOiJodHRwczovL2F0dGVzdC1icm9rZXIuZXhhbXBsZSIsInN1YiI6InN5c3RlbTpzZXJ2aWNlYWNjb3VudDptbDpsb2FkZXIiLCJpYXQiOjE3OTU5MTQwMDAsIm5iZiI6MTc5NTkxNDAwMCwiZXhwIjoxNzk1OTE0MzAwLCJqdGkiOiJvOGxfaGNpeThfeGlhTDVwOS1ZVVZnIiwiY25mIjp7ImprdCI6IlZ5NTdYckFyVXJXME5icEkxMnRFekRIQUJ4TXdyVGg2SEhYUmVuU3BuQ28ifSwiY2xhaW1zIjp7InRlZSI6InRkeCIsImRlYnVnIjpmYWxzZSwidGNiX3N0YXR1cyI6IlVwVG9EYXRlIn19.C9SBnjGTwjxGiXvtxg1MdEzqnmW3tS5ucK3ZndzDlaEnNtETZUrnSBpsuOeJ-VFNUUOpnQPPUUBoDpyj7k1aHQ";

    private const string ExampleJwks =
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"4CKVH1mVjIQTS9EMi29uvjSkMDNnvpIwJcEoy3dulj8\",\"y\":\"Q60CN-6N0fN4sTGrTh70MAyuXNpDnDwfNg5cBk-8CsU\",\"kid\":\"G0Q3B_bSss6XlCLMtrN2kYSLJiVT1ETROnJ7wCZYpuY\",\"alg\":\"ES256\",\"use\":\"sig\"}]}";

    private static readonly DateTimeOffset ExampleTime = new(2026, 11, 29, 1, 0, 0, TimeSpan.Zero);

    private static ECDiffieHellman Bob() => ECDiffieHellman.Create(new ECParameters
    {
        Curve = ECCurve.NamedCurves.nistP256,
        Q = new ECPoint { X = TestSupport.UnB64(BobX), Y = TestSupport.UnB64(BobY) },
        D = TestSupport.UnB64(BobD),
    });

    [Test]
    public void Document_jwe_decrypts_with_the_rfc_key_to_bytes_00_to_1f()
    {
        using var bob = Bob();
        var plaintext = JweDecryptor.Decrypt(ExampleJwe, bob, out var kid);
        Assert.Multiple(() =>
        {
            Assert.That(plaintext, Is.EqualTo(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
            Assert.That(kid, Is.EqualTo("model-key-1"));
        });
    }

    [Test]
    public void Document_token_verifies_against_the_document_jwks_at_its_issue_time()
    {
        using var bob = Bob();
        var claims = ResultToken.Verify(ExampleToken, AttestBroker.Protocol.Jwks.Parse(ExampleJwks), "https://attest-broker.example", Jwk.FromPublicKey(bob), ExampleTime.AddMinutes(1));
        Assert.Multiple(() =>
        {
            Assert.That(claims.ConfirmationThumbprint, Is.EqualTo("Vy57XrArUrW0NbpI12tEzDHABxMwrTh6HHXRenSpnCo"));
            Assert.That(claims.Expires, Is.EqualTo(ExampleTime.AddMinutes(5)));
            Assert.That(claims.Claims["tcb_status"]!.GetValue<string>(), Is.EqualTo("UpToDate"));
        });
    }

    [Test]
    public void Document_token_is_expired_six_minutes_after_issue()
    {
        using var bob = Bob();
        Assert.That(
            TestSupport.ErrorOf(() => ResultToken.Verify(ExampleToken, AttestBroker.Protocol.Jwks.Parse(ExampleJwks), "https://attest-broker.example", Jwk.FromPublicKey(bob), ExampleTime.AddMinutes(6))),
            Is.EqualTo(ProtocolError.TokenExpired));
    }
}
