using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Keys.Backends.AzureKeyVault;
using Azure.Core;
using Microsoft.AspNetCore.Http;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>A fixed Entra ID token, standing in for Azure.Identity in contract tests.</summary>
internal sealed class StaticTokenCredential : TokenCredential
{
    public const string Token = "eyJ.test-access-token-never-logged.sig";

    public List<string> Scopes { get; } = [];

    public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
    {
        Scopes.AddRange(requestContext.Scopes);
        return new AccessToken(Token, DateTimeOffset.UtcNow.AddHours(1));
    }

    public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
        ValueTask.FromResult(GetToken(requestContext, cancellationToken));
}

/// <summary>
/// CONTRACT TESTS ONLY: answers the Key Vault REST calls the client makes, in the documented shapes
/// (key bundles {key:{kid,kty,key_ops,...},attributes:{...}}, {kid,value} for wrapkey/unwrapkey with RSA-OAEP-256,
/// {error:{code,message}}, and for release a JWS signed by a certificate chain whose leaf names localhost, with
/// key_hsm = RSA-OAEP(ephemeral AES key) || RFC 5649 wrap of the key, to the broker's RSA key). Its "release policy"
/// is one accepted token string; Key Vault's real policy engine is not modelled.
/// </summary>
internal sealed class FakeKeyVault : IDisposable
{
    private readonly List<(string Version, RSA Key)> _rsaVersions = [];
    private readonly ConcurrentDictionary<string, (string Version, byte[] Bytes, bool Exportable)> _octKeys = new();
    private readonly RSA _caKey = RSA.Create(2048);
    private readonly RSA _leafKey = RSA.Create(2048);

    public FakeKeyVault(LocalService service, string rsaKeyName = "model-kek")
    {
        Service = service;
        RsaKeyName = rsaKeyName;
        AddRsaVersion();
        var caReq = new CertificateRequest("CN=Test Release Root", _caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        Root = caReq.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        Leaf = IssueLeaf("localhost", Root, _caKey);
        service.Handler = HandleAsync;
    }

    public LocalService Service { get; }

    public string RsaKeyName { get; }

    public X509Certificate2 Root { get; }

    /// <summary>The root's private key, to issue other leaves in tests.</summary>
    public RSA RootKey => _caKey;

    /// <summary>The release-signing certificate (without private key) put in x5c.</summary>
    public X509Certificate2 Leaf { get; set; }

    /// <summary>Signs releases instead of the leaf's key (to test a bad signature).</summary>
    public RSA? SigningKeyOverride { get; set; }

    /// <summary>The one attestation token the fake's release policy accepts.</summary>
    public string AcceptedToken { get; set; } = "eyJ.accepted-maa-token.sig";

    /// <summary>The broker's RSA public key that releases are wrapped to (KV reads it from the token's runtime claims).</summary>
    public RSA? ReleaseTarget { get; set; }

    public ConcurrentQueue<(string Path, int Status, string? RetryAfter, string Body)> Faults { get; } = new();

    public string LatestVersion => _rsaVersions[^1].Version;

    public string Kid(string name, string version) => $"{Service.Address.GetLeftPart(UriPartial.Authority)}/keys/{name}/{version}";

    public byte[] OctKeyBytes(string name) => _octKeys[name].Bytes;

    /// <summary>What Key Vault's unwrapkey would give for <paramref name="wrapped"/> under the RSA key version (for assertions).</summary>
    public byte[] Unwrap(string version, byte[] wrapped) =>
        _rsaVersions.Single(e => e.Version == version).Key.Decrypt(wrapped, RSAEncryptionPadding.OaepSHA256);

    public string AddRsaVersion()
    {
        string version = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        _rsaVersions.Add((version, RSA.Create(2048)));
        return version;
    }

    public X509Certificate2 IssueLeaf(string host, X509Certificate2 issuer, RSA issuerKey)
    {
        var req = new CertificateRequest($"CN={host}", _leafKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        return req.Create(issuer.SubjectName, X509SignatureGenerator.CreateForRSA(issuerKey, RSASignaturePadding.Pkcs1),
            DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(30), RandomNumberGenerator.GetBytes(8));
    }

    public void Dispose()
    {
        foreach (var (_, k) in _rsaVersions)
        {
            k.Dispose();
        }

        _caKey.Dispose();
        _leafKey.Dispose();
        Root.Dispose();
        Leaf.Dispose();
    }

    private static Task Error(HttpContext ctx, int status, string code, string message, string? retryAfter = null) =>
        Answer.Json(ctx, status, new JsonObject { ["error"] = new JsonObject { ["code"] = code, ["message"] = message } }.ToJsonString(),
            retryAfter is null ? [] : [("Retry-After", retryAfter)]);

    private JsonObject Bundle(string name, string version, string kty, bool exportable, string[] ops) => new()
    {
        ["key"] = new JsonObject { ["kid"] = Kid(name, version), ["kty"] = kty, ["key_ops"] = new JsonArray([.. ops.Select(o => (JsonNode)o)]) },
        ["attributes"] = new JsonObject { ["enabled"] = true, ["exportable"] = exportable, ["recoveryLevel"] = "Recoverable+Purgeable" },
    };

    private async Task HandleAsync(HttpContext ctx, byte[] body)
    {
        string path = ctx.Request.Path.Value!;
        if (Faults.TryPeek(out var head) && path.Contains(head.Path, StringComparison.Ordinal) && Faults.TryDequeue(out var fault))
        {
            if (fault.Status == 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(5), ctx.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return;
            }

            await Answer.Json(ctx, fault.Status, fault.Body, fault.RetryAfter is null ? [] : [("Retry-After", fault.RetryAfter)]);
            return;
        }

        if (ctx.Request.Headers.Authorization.ToString() != $"Bearer {StaticTokenCredential.Token}")
        {
            await Error(ctx, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.");
            return;
        }

        if (ctx.Request.Query["api-version"].ToString() != "7.4")
        {
            await Error(ctx, 400, "BadParameter", "The specified version is not supported.");
            return;
        }

        string[] seg = path.Trim('/').Split('/');
        JsonObject? req = body.Length > 0 ? JsonNode.Parse(body) as JsonObject : null;
        string method = ctx.Request.Method;
        if (seg.Length < 2 || seg[0] != "keys")
        {
            await Error(ctx, 404, "NotFound", "no such path");
            return;
        }

        string name = seg[1];
        if (name == RsaKeyName)
        {
            await HandleRsaAsync(ctx, seg, method, req);
            return;
        }

        if (seg.Length == 3 && seg[2] == "create" && method == "POST")
        {
            if ((string?)req?["kty"] != "oct-HSM" || (int?)req?["key_size"] != 256 || req?["release_policy"]?["data"] is null)
            {
                await Error(ctx, 400, "BadParameter", "unsupported key");
                return;
            }

            string v = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            bool exportable = (bool?)req["attributes"]?["exportable"] == true;
            _octKeys[name] = (v, RandomNumberGenerator.GetBytes(32), exportable);
            await Answer.Json(ctx, 200, Bundle(name, v, "oct-HSM", exportable, []).ToJsonString());
            return;
        }

        if (seg.Length == 2 && method == "PUT")
        {
            string v = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            bool exportable = (bool?)req?["attributes"]?["exportable"] == true;
            _octKeys[name] = (v, Base64Url.DecodeFromChars((string)req!["key"]!["k"]!), exportable);
            await Answer.Json(ctx, 200, Bundle(name, v, "oct-HSM", exportable, []).ToJsonString());
            return;
        }

        if (!_octKeys.TryGetValue(name, out var oct))
        {
            await Error(ctx, 404, "KeyNotFound", $"A key with (name/id) {name} was not found in this key vault.");
            return;
        }

        if (seg.Length == 4 && seg[3] == "release" && method == "POST")
        {
            if ((string?)req?["target"] != AcceptedToken)
            {
                await Error(ctx, 403, "AccessDenied", "Target environment attestation statement cannot be verified.");
                return;
            }

            string enc = (string?)req!["enc"] ?? "CKM_RSA_AES_KEY_WRAP";
            await Answer.Json(ctx, 200, new JsonObject { ["value"] = Release(Kid(name, oct.Version), oct.Bytes, enc) }.ToJsonString());
            return;
        }

        await Answer.Json(ctx, 200, Bundle(name, oct.Version, "oct-HSM", oct.Exportable, []).ToJsonString());
    }

    private async Task HandleRsaAsync(HttpContext ctx, string[] seg, string method, JsonObject? req)
    {
        if (seg.Length == 3 && seg[2] == "rotate" && method == "POST")
        {
            string v = AddRsaVersion();
            await Answer.Json(ctx, 200, Bundle(RsaKeyName, v, "RSA", false, ["wrapKey", "unwrapKey"]).ToJsonString());
            return;
        }

        string? version = seg.Length >= 3 && seg[2] is not ("wrapkey" or "unwrapkey") ? seg[2] : null;
        string? op = seg[^1] is "wrapkey" or "unwrapkey" ? seg[^1] : null;
        (string Version, RSA Key) entry = version is null ? _rsaVersions[^1] : _rsaVersions.FirstOrDefault(e => e.Version == version);
        if (entry.Key is null)
        {
            await Error(ctx, 404, "KeyNotFound", "A key with (name/id) model-kek/version was not found in this key vault.");
            return;
        }

        if (op is null && method == "GET")
        {
            await Answer.Json(ctx, 200, Bundle(RsaKeyName, entry.Version, "RSA", false, ["wrapKey", "unwrapKey"]).ToJsonString());
            return;
        }

        if ((string?)req?["alg"] != "RSA-OAEP-256")
        {
            await Error(ctx, 400, "BadParameter", "alg must be RSA-OAEP-256 here");
            return;
        }

        byte[] value = Base64Url.DecodeFromChars((string)req!["value"]!);
        byte[] result;
        try
        {
            result = op == "wrapkey" ? entry.Key.Encrypt(value, RSAEncryptionPadding.OaepSHA256) : entry.Key.Decrypt(value, RSAEncryptionPadding.OaepSHA256);
        }
        catch (CryptographicException)
        {
            await Error(ctx, 400, "BadParameter", "Bad Request");
            return;
        }

        await Answer.Json(ctx, 200, new JsonObject { ["kid"] = Kid(RsaKeyName, entry.Version), ["value"] = Base64Url.EncodeToString(result) }.ToJsonString());
    }

    private string Release(string kid, byte[] keyBytes, string enc)
    {
        RSA target = ReleaseTarget ?? throw new InvalidOperationException("no release target key");
        byte[] aes = RandomNumberGenerator.GetBytes(32);
        byte[] ciphertext = [.. target.Encrypt(aes, SecureKeyRelease.PaddingFor(enc)), .. AesKeyWrapWithPadding.Wrap(aes, keyBytes)];
        var keyHsm = new JsonObject
        {
            ["schema_version"] = "1.0",
            ["header"] = new JsonObject { ["kid"] = "TpmEphemeralEncryptionKey", ["alg"] = "dir", ["enc"] = enc },
            ["ciphertext"] = Base64Url.EncodeToString(ciphertext),
        };
        var payload = new JsonObject
        {
            ["request"] = new JsonObject { ["api-version"] = "7.4", ["enc"] = enc, ["kid"] = kid },
            ["response"] = new JsonObject
            {
                ["key"] = new JsonObject
                {
                    ["key"] = new JsonObject { ["kid"] = kid, ["kty"] = "oct-HSM", ["key_ops"] = new JsonArray(), ["key_hsm"] = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(keyHsm.ToJsonString())) },
                    ["attributes"] = new JsonObject { ["enabled"] = true, ["exportable"] = true },
                },
            },
        };
        var header = new JsonObject
        {
            ["alg"] = "RS256",
            ["kid"] = Convert.ToHexString(Leaf.GetCertHash()),
            ["x5t#S256"] = Base64Url.EncodeToString(SHA256.HashData(Leaf.RawData)),
            ["x5c"] = new JsonArray(Convert.ToBase64String(Leaf.RawData), Convert.ToBase64String(Root.RawData)),
        };
        string signingInput = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        byte[] sig = (SigningKeyOverride ?? _leafKey).SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return signingInput + "." + Base64Url.EncodeToString(sig);
    }
}
