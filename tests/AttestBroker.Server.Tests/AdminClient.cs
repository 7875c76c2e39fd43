using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Server.Admin;

namespace AttestBroker.Server.Tests;

/// <summary>Admin calls against the shared broker, with tokens minted from its data directory's admin-signing.key.</summary>
internal static class AdminClient
{
    public sealed record Response(int Status, JsonNode? Body, string? ContentType, string Text, string? WwwAuthenticate);

    /// <summary>A token from the broker's own local signing key, at the broker's clock.</summary>
    public static string Token(string subject, params string[] roles) => Token(subject, roles, TimeSpan.FromMinutes(15));

    public static string Token(string subject, string[] roles, TimeSpan lifetime, DateTimeOffset? issuedAt = null, string audience = AdminTokens.DefaultAudience)
    {
        using var key = AdminTokens.LoadOrCreateLocalKey(Shared.Broker.DataDir);
        return AdminTokens.Mint(key, subject, roles, issuedAt ?? Shared.Broker.Time.GetUtcNow(), lifetime, audience);
    }

    public static async Task<Response> SendAsync(string method, string path, string? token, string? body = null, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        using var response = await Shared.Broker.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var type = response.Content.Headers.ContentType?.MediaType;
        JsonNode? json = null;
        if (type is "application/json" or "application/problem+json" && text.Length > 0)
        {
            json = JsonNode.Parse(text);
        }

        return new Response((int)response.StatusCode, json, type, text, response.Headers.WwwAuthenticate.ToString());
    }

    /// <summary>Clean simulated evidence with random REPORT_DATA, base64 (for dry runs).</summary>
    public static string EvidenceBase64(Evidence.TeeKind tee, HardwareSim.Faults.SimFault? fault = null) =>
        Convert.ToBase64String(Shared.Env.Evidence(tee, RandomNumberGenerator.GetBytes(64), fault));

    public static async Task<List<JsonObject>> AuditRowsAfterAsync(long after)
    {
        var rows = await Shared.Broker.Host.Data.Storage.Audit.ReadAsync(after + 1, 10000);
        return rows.Select(r => JsonNode.Parse(r.EventJson)!.AsObject()).ToList();
    }

    public static async Task<long> LastAuditAsync() => (await Shared.Broker.Host.Data.Storage.Audit.GetLastAsync())?.Sequence ?? 0;
}
