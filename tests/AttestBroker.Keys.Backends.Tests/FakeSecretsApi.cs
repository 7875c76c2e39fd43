using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// CONTRACT TESTS ONLY: the core/v1 Secret calls of the Kubernetes API the backend makes (create, read, replace with
/// resourceVersion precondition, list with labelSelector), in the API's shapes (Secret objects with base64 data,
/// Status objects for errors, 409 Conflict on a stale resourceVersion or an existing name). Authentication, RBAC
/// and admission are not modelled; faults queue per path fragment.
/// </summary>
internal sealed class FakeSecretsApi
{
    private readonly ConcurrentDictionary<string, JsonObject> _secrets = new();
    private long _rv = 100;

    public FakeSecretsApi(LocalService service)
    {
        service.Handler = HandleAsync;
    }

    public ConcurrentQueue<(string Path, int Status, string? RetryAfter)> Faults { get; } = new();

    /// <summary>Bumps the resourceVersion of these secrets right before the next replace of each (a concurrent writer).</summary>
    public ConcurrentQueue<string> ConcurrentWriters { get; } = new();

    public JsonObject? Get(string ns, string name) => _secrets.TryGetValue($"{ns}/{name}", out var s) ? s : null;

    private static JsonObject Status(int code, string reason, string message) => new()
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = message,
        ["reason"] = reason,
        ["code"] = code,
    };

    private async Task HandleAsync(HttpContext ctx, byte[] body)
    {
        string path = ctx.Request.Path.Value!;
        if (Faults.TryPeek(out var head) && path.Contains(head.Path, StringComparison.Ordinal) && Faults.TryDequeue(out var fault))
        {
            await Answer.Json(ctx, fault.Status, Status(fault.Status, "Fault", "injected").ToJsonString(), fault.RetryAfter is null ? [] : [("Retry-After", fault.RetryAfter)]);
            return;
        }

        string[] seg = path.Trim('/').Split('/');
        if (seg.Length < 5 || seg[0] != "api" || seg[1] != "v1" || seg[2] != "namespaces" || seg[4] != "secrets")
        {
            await Answer.Json(ctx, 404, Status(404, "NotFound", "the server could not find the requested resource").ToJsonString());
            return;
        }

        string ns = seg[3];
        string method = ctx.Request.Method;
        if (seg.Length == 5 && method == "POST")
        {
            var secret = (JsonObject)JsonNode.Parse(body)!;
            string name = (string)secret["metadata"]!["name"]!;
            secret["metadata"]!["resourceVersion"] = Interlocked.Increment(ref _rv).ToString(System.Globalization.CultureInfo.InvariantCulture);
            secret["metadata"]!["uid"] = Guid.NewGuid().ToString();
            if (!_secrets.TryAdd($"{ns}/{name}", secret))
            {
                await Answer.Json(ctx, 409, Status(409, "AlreadyExists", $"secrets \"{name}\" already exists").ToJsonString());
                return;
            }

            await Answer.Json(ctx, 201, secret.ToJsonString());
            return;
        }

        if (seg.Length == 5 && method == "GET")
        {
            string selector = ctx.Request.Query["labelSelector"].ToString();
            var wanted = selector.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=')).ToList();
            var items = new JsonArray();
            foreach (var (key, s) in _secrets.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                if (key.StartsWith(ns + "/", StringComparison.Ordinal) && wanted.All(w => (string?)s["metadata"]?["labels"]?[w[0]] == w[1]))
                {
                    items.Add(s.DeepClone());
                }
            }

            await Answer.Json(ctx, 200, new JsonObject { ["kind"] = "SecretList", ["apiVersion"] = "v1", ["metadata"] = new JsonObject { ["resourceVersion"] = _rv.ToString(System.Globalization.CultureInfo.InvariantCulture) }, ["items"] = items }.ToJsonString());
            return;
        }

        string id = $"{ns}/{seg[5]}";
        if (method == "GET")
        {
            if (_secrets.TryGetValue(id, out var s))
            {
                await Answer.Json(ctx, 200, s.ToJsonString());
            }
            else
            {
                await Answer.Json(ctx, 404, Status(404, "NotFound", $"secrets \"{seg[5]}\" not found").ToJsonString());
            }

            return;
        }

        if (method == "PUT")
        {
            if (ConcurrentWriters.TryPeek(out string? w) && w == seg[5] && ConcurrentWriters.TryDequeue(out _) && _secrets.TryGetValue(id, out var bumped))
            {
                bumped["metadata"]!["resourceVersion"] = Interlocked.Increment(ref _rv).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            var secret = (JsonObject)JsonNode.Parse(body)!;
            if (!_secrets.TryGetValue(id, out var current))
            {
                await Answer.Json(ctx, 404, Status(404, "NotFound", $"secrets \"{seg[5]}\" not found").ToJsonString());
                return;
            }

            if ((string?)secret["metadata"]?["resourceVersion"] != (string?)current["metadata"]!["resourceVersion"])
            {
                await Answer.Json(ctx, 409, Status(409, "Conflict", $"Operation cannot be fulfilled on secrets \"{seg[5]}\": the object has been modified; please apply your changes to the latest version and try again").ToJsonString());
                return;
            }

            secret["metadata"]!["resourceVersion"] = Interlocked.Increment(ref _rv).ToString(System.Globalization.CultureInfo.InvariantCulture);
            _secrets[id] = secret;
            await Answer.Json(ctx, 200, secret.ToJsonString());
            return;
        }

        await Answer.Json(ctx, 405, Status(405, "MethodNotAllowed", "no").ToJsonString());
    }
}
