using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// CONTRACT TESTS ONLY: answers the Vault HTTP API calls the client makes, in Vault's documented shapes (data /
/// auth envelopes, {"errors": [...]}, "vault:vN:" + base64(nonce || ciphertext || tag) for an aes256-gcm96 key):
/// token lookup-self and renew-self, Kubernetes login, Transit datakey/wrapped, encrypt, decrypt, rewrap, rotate
/// and key read. Token checks are real (unknown token: 403 "permission denied"); policies and leases beyond a TTL
/// are not modelled. Faults queue per path fragment.
/// </summary>
internal sealed class FakeVault
{
    public const string RootToken = "hvs.test-root-token-never-logged";
    public const string K8sToken = "hvs.k8s-login-token-never-logged";
    private readonly List<byte[]> _versions = [];
    private readonly ConcurrentDictionary<string, bool> _tokens = new() { [RootToken] = true };

    public FakeVault(LocalService service, string mount = "transit", string key = "model-keys")
    {
        Service = service;
        Mount = mount;
        KeyName = key;
        _versions.Add(RandomNumberGenerator.GetBytes(32));
        service.Handler = HandleAsync;
    }

    public LocalService Service { get; }

    public string Mount { get; }

    public string KeyName { get; }

    public int TokenTtlSeconds { get; set; } = 3600;

    public string? ExpectedRole { get; set; } = "attestbroker";

    public string? ExpectedJwt { get; set; }

    /// <summary>Faults by path fragment: each answers one request (status, Retry-After or null, body); status 0 = hang for 5 s.</summary>
    public ConcurrentQueue<(string Path, int Status, string? RetryAfter, string Body)> Faults { get; } = new();

    public int LatestVersion => _versions.Count;

    public void Revoke(string token) => _tokens.TryRemove(token, out _);

    /// <summary>What Vault would decrypt the ciphertext to (for assertions).</summary>
    public byte[] Open(string ciphertext)
    {
        string[] parts = ciphertext.Split(':');
        int v = int.Parse(parts[1][1..], System.Globalization.CultureInfo.InvariantCulture);
        byte[] blob = Convert.FromBase64String(parts[2]);
        byte[] plain = new byte[blob.Length - 28];
        using var gcm = new AesGcm(_versions[v - 1], 16);
        gcm.Decrypt(blob.AsSpan(0, 12), blob.AsSpan(12, plain.Length), blob.AsSpan(12 + plain.Length), plain);
        return plain;
    }

    private string Seal(byte[] plain, int version)
    {
        byte[] blob = new byte[12 + plain.Length + 16];
        RandomNumberGenerator.Fill(blob.AsSpan(0, 12));
        using var gcm = new AesGcm(_versions[version - 1], 16);
        gcm.Encrypt(blob.AsSpan(0, 12), plain, blob.AsSpan(12, plain.Length), blob.AsSpan(12 + plain.Length));
        return $"vault:v{version}:{Convert.ToBase64String(blob)}";
    }

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

        JsonObject? req = body.Length > 0 ? JsonNode.Parse(body) as JsonObject : null;
        if (path == "/v1/auth/kubernetes/login" && ctx.Request.Method == "POST")
        {
            if ((string?)req?["role"] != ExpectedRole || (ExpectedJwt is not null && (string?)req?["jwt"] != ExpectedJwt))
            {
                await Answer.Json(ctx, 403, """{"errors":["permission denied"]}""");
                return;
            }

            _tokens[K8sToken] = true;
            await Answer.Json(ctx, 200, $$$"""{"auth":{"client_token":"{{{K8sToken}}}","accessor":"a","policies":["model-decrypt"],"lease_duration":{{{TokenTtlSeconds}}},"renewable":true}}""");
            return;
        }

        string? token = ctx.Request.Headers["X-Vault-Token"];
        if (token is null || !_tokens.ContainsKey(token))
        {
            await Answer.Json(ctx, 403, """{"errors":["permission denied"]}""");
            return;
        }

        string transit = $"/v1/{Mount}/";
        switch (path)
        {
            case "/v1/auth/token/lookup-self":
                await Answer.Json(ctx, 200, $$$"""{"data":{"ttl":{{{TokenTtlSeconds}}},"renewable":true,"policies":["model-decrypt"]}}""");
                return;
            case "/v1/auth/token/renew-self":
                await Answer.Json(ctx, 200, $$$"""{"auth":{"client_token":"{{{token}}}","lease_duration":{{{TokenTtlSeconds}}},"renewable":true}}""");
                return;
        }

        if (!path.StartsWith(transit, StringComparison.Ordinal))
        {
            await Answer.Json(ctx, 404, """{"errors":[]}""");
            return;
        }

        string rest = path[transit.Length..];
        string? context = (string?)req?["context"];
        _ = context;
        if (rest == $"datakey/wrapped/{KeyName}")
        {
            byte[] dek = RandomNumberGenerator.GetBytes(((int?)req?["bits"] ?? 256) / 8);
            await Answer.Json(ctx, 200, Data(new JsonObject { ["ciphertext"] = Seal(dek, LatestVersion), ["key_version"] = LatestVersion }));
        }
        else if (rest == $"encrypt/{KeyName}")
        {
            byte[] plain = Convert.FromBase64String((string)req!["plaintext"]!);
            await Answer.Json(ctx, 200, Data(new JsonObject { ["ciphertext"] = Seal(plain, LatestVersion), ["key_version"] = LatestVersion }));
        }
        else if (rest == $"decrypt/{KeyName}")
        {
            byte[] plain;
            try
            {
                plain = Open((string)req!["ciphertext"]!);
            }
            catch (Exception e) when (e is CryptographicException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
            {
                await Answer.Json(ctx, 400, """{"errors":["cipher: message authentication failed"]}""");
                return;
            }

            await Answer.Json(ctx, 200, Data(new JsonObject { ["plaintext"] = Convert.ToBase64String(plain) }));
        }
        else if (rest == $"rewrap/{KeyName}")
        {
            byte[] plain = Open((string)req!["ciphertext"]!);
            await Answer.Json(ctx, 200, Data(new JsonObject { ["ciphertext"] = Seal(plain, LatestVersion), ["key_version"] = LatestVersion }));
        }
        else if (rest == $"keys/{KeyName}/rotate")
        {
            _versions.Add(RandomNumberGenerator.GetBytes(32));
            await Answer.Json(ctx, 200, Data(KeyData()));
        }
        else if (rest == $"keys/{KeyName}")
        {
            await Answer.Json(ctx, 200, Data(KeyData()));
        }
        else
        {
            await Answer.Json(ctx, 404, """{"errors":[]}""");
        }
    }

    private JsonObject KeyData() => new()
    {
        ["name"] = KeyName,
        ["type"] = "aes256-gcm96",
        ["latest_version"] = LatestVersion,
        ["min_decryption_version"] = 1,
        ["derived"] = false,
        ["keys"] = new JsonObject(),
    };

    private static string Data(JsonObject data) => new JsonObject { ["request_id"] = Guid.NewGuid().ToString(), ["data"] = data }.ToJsonString();

    public static string Utf8(byte[] b) => Encoding.UTF8.GetString(b);

    public static JsonElement ParseBody(byte[] b) => JsonDocument.Parse(b).RootElement;
}
