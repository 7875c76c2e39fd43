using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>
/// A real attest over HTTPS, checked by an implementation this code does not use: npm "jose" under Node.js
/// (tests/AttestBroker.Protocol.Tests/Interop/broker-check.mjs) decrypts the broker's JWE with the pod's private JWK
/// and verifies the result token against the JWKS the broker publishes (ES256, iss, typ, 5 minutes, cnf.jkt equal to
/// the RFC 7638 thumbprint jose computes). Ignored, saying how to install, when node or the package is missing.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class IndependentJoseTests
{
    private const string InteropDirVariable = "ATTESTBROKER_JOSE_INTEROP_DIR";
    private const string Issuer = "https://broker.test";
    private static readonly Lazy<string?> InteropDir = new(FindInteropDir);

    [OneTimeSetUp]
    public void RequireNodeAndJose()
    {
        var dir = InteropDir.Value;
        if (dir is null)
        {
            Assert.Ignore($"broker-check.mjs not found (set {InteropDirVariable} to tests/AttestBroker.Protocol.Tests/Interop); the independent JOSE check is skipped");
        }

        if (!Directory.Exists(Path.Combine(dir, "node_modules", "jose")))
        {
            Assert.Ignore($"npm package jose not installed: run `npm ci --prefix {dir}` (.ci/run does); the independent JOSE check is skipped");
        }

        try
        {
            using var p = Process.Start(new ProcessStartInfo("node", "--version") { RedirectStandardOutput = true, UseShellExecute = false });
            p!.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Ignore("node is not on PATH: install Node.js (apt-get install nodejs npm; .ci/run does); the independent JOSE check is skipped");
        }
    }

    private static IEnumerable<TestCaseData> PodKeys()
    {
        yield return new TestCaseData("P-256").SetArgDisplayNames("EC_P256");
        yield return new TestCaseData("P-384").SetArgDisplayNames("EC_P384");
        yield return new TestCaseData("RSA-3072").SetArgDisplayNames("RSA_3072");
    }

    [TestCaseSource(nameof(PodKeys))]
    public async Task Jose_decrypts_the_granted_key_and_verifies_the_result_token(string kind)
    {
        using var pod = PodKey.Create(kind);
        var grant = await GrantAsync(pod);

        var answer = Check(grant.Request(pod));

        Assert.That(answer["error"], Is.Null, () => $"jose refused: {answer["error"]}");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Convert.FromHexString((string)answer["plaintext"]!), Is.EqualTo(Shared.KeyBytes(Shared.TdxKey)), "jose unwraps exactly the key the test imported");
            Assert.That((string?)answer["jweHeader"]!["alg"], Is.EqualTo(pod.Alg));
            Assert.That((string?)answer["jweHeader"]!["enc"], Is.EqualTo("A256GCM"));
            Assert.That((string?)answer["tokenHeader"]!["alg"], Is.EqualTo("ES256"));
            Assert.That((string?)answer["payload"]!["iss"], Is.EqualTo(Issuer));
            Assert.That((long)answer["payload"]!["exp"]! - (long)answer["payload"]!["iat"]!, Is.EqualTo(300));
            Assert.That((string?)answer["payload"]!["cnf"]!["jkt"], Is.EqualTo(pod.Public.Thumbprint()), "jose's RFC 7638 thumbprint agrees with ours");
        }
    }

    [Test]
    public async Task Jose_refuses_the_grant_when_one_byte_of_the_jwe_is_changed()
    {
        using var pod = PodKey.Create("P-256");
        var grant = await GrantAsync(pod);
        var parts = grant.Jwe.Split('.');
        var ciphertext = RunningBroker.Base64UrlDecode(parts[3]);
        ciphertext[0] ^= 0x01;
        parts[3] = RunningBroker.Base64UrlEncode(ciphertext);

        var answer = Check(grant with { Jwe = string.Join('.', parts) }, pod, expectFailure: true);

        Assert.That((string?)answer["error"], Does.StartWith("ERR_JWE_DECRYPTION_FAILED"), "the AES-GCM tag no longer verifies");
    }

    [Test]
    public async Task Jose_refuses_a_token_with_the_brokers_header_and_claims_signed_by_another_key()
    {
        using var pod = PodKey.Create("P-256");
        var grant = await GrantAsync(pod);
        var parts = grant.Token.Split('.');
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var signature = other.SignData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        var forged = parts[0] + "." + parts[1] + "." + RunningBroker.Base64UrlEncode(signature);

        var answer = Check(grant with { Token = forged }, pod, expectFailure: true);

        Assert.That((string?)answer["error"], Does.StartWith("ERR_JWS_SIGNATURE_VERIFICATION_FAILED"));
    }

    private static async Task<Grant> GrantAsync(PodKey pod)
    {
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, pod.Public, null, Shared.TdxKey);
        Assert.That(status, Is.EqualTo(200), () => $"not granted: {body}");
        using var response = await Shared.Broker.Client.GetAsync(new Uri("/.well-known/jwks.json", UriKind.Relative));
        Assert.That((int)response.StatusCode, Is.EqualTo(200));
        var jwks = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var jwe = (string)body!["keys"]![0]!["jwe"]!;
        return new Grant(jwe, (string)body["token"]!, jwks, Shared.Broker.Time.GetUtcNow().ToUnixTimeSeconds() + 60);
    }

    private static JsonNode Check(JsonObject request) => Run(request, expectFailure: false);

    private static JsonNode Check(Grant grant, PodKey pod, bool expectFailure) => Run(grant.Request(pod), expectFailure);

    private static JsonNode Run(JsonObject request, bool expectFailure)
    {
        var psi = new ProcessStartInfo("node", "broker-check.mjs")
        {
            WorkingDirectory = InteropDir.Value!,
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
            Assert.Fail("broker-check.mjs did not finish");
        }

        var answer = JsonNode.Parse(stdout.Result) ?? throw new AssertionException("broker-check.mjs printed nothing: " + stderr.Result);
        Assert.That(p.ExitCode, expectFailure ? Is.EqualTo(1) : Is.Zero, () => $"broker-check.mjs exit {p.ExitCode}: {answer["error"]} {stderr.Result}");
        return answer;
    }

    private static string? FindInteropDir()
    {
        var candidates = new List<string?> { Environment.GetEnvironmentVariable(InteropDirVariable) };
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AttestBroker.sln")))
            {
                candidates.Add(Path.Combine(dir.FullName, "tests", "AttestBroker.Protocol.Tests", "Interop"));
                break;
            }
        }

        // Built outside the checkout (ATTESTBROKER_ARTIFACTS elsewhere): from this source file's folder.
        if (SourceDir() is { } source)
        {
            candidates.Add(Path.Combine(source, "..", "AttestBroker.Protocol.Tests", "Interop"));
        }

        return candidates.Find(d => !string.IsNullOrEmpty(d) && File.Exists(Path.Combine(d, "broker-check.mjs")));
    }

    private static string? SourceDir([CallerFilePath] string path = "") => Path.GetDirectoryName(path);

    private static string B64(byte[]? value) => RunningBroker.Base64UrlEncode(value ?? []);

    /// <summary>What the broker answered and what jose needs to check it.</summary>
    private sealed record Grant(string Jwe, string Token, JsonNode Jwks, long Now)
    {
        public JsonObject Request(PodKey pod) => new()
        {
            ["jwe"] = Jwe,
            ["alg"] = pod.Alg,
            ["privateJwk"] = pod.PrivateJwk(),
            ["publicJwk"] = JsonNode.Parse(pod.Public.ToJson()),
            ["token"] = Token,
            ["jwks"] = Jwks.DeepClone(),
            ["issuer"] = Issuer,
            ["typ"] = ResultToken.TokenType,
            ["now"] = Now,
        };
    }

    /// <summary>The pod's ephemeral key pair (EC P-256/P-384 for ECDH-ES+A256KW, RSA-3072 for RSA-OAEP-256).</summary>
    private sealed class PodKey : IDisposable
    {
        private readonly AsymmetricAlgorithm _key;

        private PodKey(AsymmetricAlgorithm key, Jwk publicJwk, string alg)
        {
            _key = key;
            Public = publicJwk;
            Alg = alg;
        }

        public Jwk Public { get; }

        public string Alg { get; }

        public static PodKey Create(string kind)
        {
            if (kind == "RSA-3072")
            {
                var rsa = RSA.Create(3072);
                return new PodKey(rsa, Jwk.FromPublicKey(rsa), JoseAlgorithms.RsaOaep256);
            }

            var ec = ECDiffieHellman.Create(kind == "P-384" ? ECCurve.NamedCurves.nistP384 : ECCurve.NamedCurves.nistP256);
            return new PodKey(ec, Jwk.FromPublicKey(ec), JoseAlgorithms.EcdhEsA256Kw);
        }

        public JsonObject PrivateJwk()
        {
            if (_key is RSA rsa)
            {
                var p = rsa.ExportParameters(true);
                return new JsonObject
                {
                    ["kty"] = "RSA",
                    ["n"] = B64(p.Modulus),
                    ["e"] = B64(p.Exponent),
                    ["d"] = B64(p.D),
                    ["p"] = B64(p.P),
                    ["q"] = B64(p.Q),
                    ["dp"] = B64(p.DP),
                    ["dq"] = B64(p.DQ),
                    ["qi"] = B64(p.InverseQ),
                };
            }

            var e = ((ECDiffieHellman)_key).ExportParameters(true);
            return new JsonObject
            {
                ["kty"] = "EC",
                ["crv"] = e.Q.X!.Length == 48 ? "P-384" : "P-256",
                ["x"] = B64(e.Q.X),
                ["y"] = B64(e.Q.Y),
                ["d"] = B64(e.D),
            };
        }

        public void Dispose() => _key.Dispose();
    }
}
