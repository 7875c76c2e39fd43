using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Interop;

/// <summary>
/// Checks this library against an independent implementation, npm "jose", run under Node.js by jose-peer.mjs.
/// Needs `node` on PATH and `npm ci --prefix tests/AttestBroker.Protocol.Tests/Interop`; without them every test
/// here is ignored (reported as skipped) with the reason.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class JoseInteropTests
{
    private static readonly byte[] ModelKey = RandomNumberGenerator.GetBytes(32);

    /// <summary>Overrides where jose-peer.mjs and its node_modules are looked for.</summary>
    private const string InteropDirVariable = "ATTESTBROKER_JOSE_INTEROP_DIR";

    private static readonly Lazy<string?> InteropDirLazy = new(FindInteropDir);

    private static string InteropDir => InteropDirLazy.Value!;

    private static IEnumerable<TestCaseData> Recipients()
    {
        yield return new TestCaseData("P-256").SetArgDisplayNames("P-256");
        yield return new TestCaseData("P-384").SetArgDisplayNames("P-384");
        yield return new TestCaseData("RSA-3072").SetArgDisplayNames("RSA-3072");
        yield return new TestCaseData("RSA-4096").SetArgDisplayNames("RSA-4096");
    }

    [OneTimeSetUp]
    public void RequireNodeAndJose()
    {
        if (InteropDirLazy.Value is null)
        {
            Assert.Ignore($"jose-peer.mjs not found (set {InteropDirVariable}); interop tests skipped");
        }

        if (!Directory.Exists(Path.Combine(InteropDir, "node_modules", "jose")))
        {
            Assert.Ignore($"npm jose not installed (run: npm ci --prefix {InteropDir}); interop tests skipped");
        }

        try
        {
            using var p = Process.Start(new ProcessStartInfo("node", "--version") { RedirectStandardOutput = true, UseShellExecute = false });
            p!.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Ignore("node is not on PATH; interop tests skipped");
        }
    }

    [TestCaseSource(nameof(Recipients))]
    public void Jwe_made_here_is_decrypted_by_jose(string kind)
    {
        var (publicJwk, privateJwk, alg, _) = Key(kind);
        var jwe = JweEncryptor.Encrypt(ModelKey, publicJwk, "model-1");

        var answer = Peer(new JsonObject { ["op"] = "decrypt", ["alg"] = alg, ["jwk"] = privateJwk, ["jwe"] = jwe });

        Assert.Multiple(() =>
        {
            Assert.That(answer["plaintext"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(ModelKey)));
            Assert.That(answer["header"]!["kid"]!.GetValue<string>(), Is.EqualTo("model-1"));
        });
    }

    [TestCaseSource(nameof(Recipients))]
    public void Jwe_made_by_jose_is_decrypted_here(string kind)
    {
        var (publicJwk, _, alg, decrypt) = Key(kind);
        var answer = Peer(new JsonObject { ["op"] = "encrypt", ["alg"] = alg, ["jwk"] = JsonNode.Parse(publicJwk.ToJson()), ["plaintext"] = Convert.ToHexStringLower(ModelKey), ["kid"] = "m" });

        Assert.That(decrypt(answer["jwe"]!.GetValue<string>()), Is.EqualTo(ModelKey));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Thumbprints_agree_with_jose(string kind)
    {
        var (publicJwk, _, _, _) = Key(kind);
        var answer = Peer(new JsonObject { ["op"] = "thumbprint", ["jwk"] = JsonNode.Parse(publicJwk.ToJson()) });
        Assert.That(answer["thumbprint"]!.GetValue<string>(), Is.EqualTo(publicJwk.Thumbprint()));
    }

    [Test]
    public void Token_made_here_is_verified_by_jose_with_the_published_jwks()
    {
        using var signer = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        var token = ResultToken.Create(new ResultTokenDescriptor { Issuer = "https://broker.example", ConfirmationKey = Jwk.FromPublicKey(pod), Claims = new JsonObject { ["tee"] = "snp" } }, signer, now);

        var answer = Peer(new JsonObject
        {
            ["op"] = "verify",
            ["token"] = token,
            ["jwks"] = JsonNode.Parse(AttestBroker.Protocol.Jwks.FromSigningKeys([signer]).ToJson()),
            ["issuer"] = "https://broker.example",
            ["typ"] = ResultToken.TokenType,
            ["now"] = now.ToUnixTimeSeconds() + 60,
        });

        Assert.Multiple(() =>
        {
            Assert.That(answer["payload"]!["cnf"]!["jkt"]!.GetValue<string>(), Is.EqualTo(Jwk.FromPublicKey(pod).Thumbprint()));
            Assert.That(answer["payload"]!["exp"]!.GetValue<long>(), Is.EqualTo(now.ToUnixTimeSeconds() + 300));
            Assert.That(answer["header"]!["kid"]!.GetValue<string>(), Is.EqualTo(Jwk.FromPublicKey(signer).Thumbprint()));
        });
    }

    [Test]
    public void Token_signed_by_jose_in_the_same_shape_is_verified_here()
    {
        using var signer = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var podJwk = Jwk.FromPublicKey(pod);
        var kid = Jwk.FromPublicKey(signer).Thumbprint();
        const long Iat = 1_800_000_000;
        var answer = Peer(new JsonObject
        {
            ["op"] = "sign",
            ["jwk"] = PrivateEcJwk(signer.ExportParameters(true)),
            ["kid"] = kid,
            ["typ"] = ResultToken.TokenType,
            ["payload"] = new JsonObject
            {
                ["iss"] = "https://broker.example",
                ["iat"] = Iat,
                ["nbf"] = Iat,
                ["exp"] = Iat + 300,
                ["jti"] = "abc",
                ["cnf"] = new JsonObject { ["jkt"] = podJwk.Thumbprint() },
                ["claims"] = new JsonObject { ["tee"] = "tdx" },
            },
        });

        var claims = ResultToken.Verify(answer["token"]!.GetValue<string>(), AttestBroker.Protocol.Jwks.FromSigningKeys([signer]), "https://broker.example", podJwk, DateTimeOffset.FromUnixTimeSeconds(Iat + 10));
        Assert.That(claims.Claims["tee"]!.GetValue<string>(), Is.EqualTo("tdx"));
    }

    private static string? FindInteropDir()
    {
        var candidates = new List<string?> { Environment.GetEnvironmentVariable(InteropDirVariable) };
        try
        {
            candidates.Add(Path.Combine(TestPaths.RepoRoot, "tests", "AttestBroker.Protocol.Tests", "Interop"));
        }
        catch (InvalidOperationException)
        {
            // Built outside the checkout (e.g. ATTESTBROKER_ARTIFACTS elsewhere): fall back to this file's folder.
        }

        candidates.Add(SourceDir());
        return candidates.Find(d => !string.IsNullOrEmpty(d) && File.Exists(Path.Combine(d, "jose-peer.mjs")));
    }

    private static string? SourceDir([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path);

    private static (Jwk Public, JsonObject Private, string Alg, Func<string, byte[]> Decrypt) Key(string kind)
    {
        if (kind.StartsWith("RSA", StringComparison.Ordinal))
        {
            var rsa = kind == "RSA-3072" ? TestSupport.Rsa3072 : TestSupport.Rsa4096;
            var p = rsa.ExportParameters(true);
            var priv = new JsonObject
            {
                ["kty"] = "RSA",
                ["n"] = TestSupport.B64(p.Modulus),
                ["e"] = TestSupport.B64(p.Exponent),
                ["d"] = TestSupport.B64(p.D),
                ["p"] = TestSupport.B64(p.P),
                ["q"] = TestSupport.B64(p.Q),
                ["dp"] = TestSupport.B64(p.DP),
                ["dq"] = TestSupport.B64(p.DQ),
                ["qi"] = TestSupport.B64(p.InverseQ),
            };
            return (Jwk.FromPublicKey(rsa), priv, JoseAlgorithms.RsaOaep256, s => JweDecryptor.Decrypt(s, rsa));
        }

        var ec = TestSupport.NewEcdh(kind);
        return (Jwk.FromPublicKey(ec), PrivateEcJwk(ec.ExportParameters(true)), JoseAlgorithms.EcdhEsA256Kw, s => JweDecryptor.Decrypt(s, ec));
    }

    private static JsonObject PrivateEcJwk(ECParameters p) => new()
    {
        ["kty"] = "EC",
        ["crv"] = p.Q.X!.Length == 48 ? "P-384" : "P-256",
        ["x"] = TestSupport.B64(p.Q.X),
        ["y"] = TestSupport.B64(p.Q.Y),
        ["d"] = TestSupport.B64(p.D),
    };

    private static JsonNode Peer(JsonObject request)
    {
        var psi = new ProcessStartInfo("node", "jose-peer.mjs")
        {
            WorkingDirectory = InteropDir,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var p = Process.Start(psi)!;
        p.StandardInput.Write(request.ToJsonString());
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();

        // A guard against a hung child, not a timing assertion.
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill();
            Assert.Fail("jose-peer.mjs did not finish");
        }

        var answer = JsonNode.Parse(stdout.Result)!;
        Assert.That(p.ExitCode, Is.Zero, () => $"jose refused: {answer["error"]} {stderr.Result}");
        return answer;
    }
}
