using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Kubernetes.Tests;

/// <summary>
/// CONTRACT TESTS ONLY: there is no Kubernetes API server here. This is a Kestrel server on 127.0.0.1 that speaks
/// the request and answer shapes of the few Kubernetes API calls the library makes (TokenReview create; list and
/// watch of keyreleasepolicies.attestbroker.io/v1 across namespaces with ADDED/MODIFIED/DELETED/BOOKMARK and ERROR
/// events; merge patch of their status subresource; merge patch of a pod; core/v1 Event create), so KubernetesClient
/// is exercised end to end over HTTP. It checks what a real API server would check for these calls (content types,
/// the pod UID precondition) but not authentication, RBAC or admission.
/// </summary>
internal sealed class FakeKubernetesApi : IAsyncDisposable
{
    public const string PolicyPath = "/apis/attestbroker.io/v1/keyreleasepolicies";

    private readonly WebApplication _app;

    private FakeKubernetesApi(WebApplication app, string host)
    {
        _app = app;
        Host = host;
    }

    public string Host { get; }

    /// <summary>TokenReview answer for a request body: (HTTP status, JSON body).</summary>
    public Func<JsonObject, (int Status, JsonObject Body)> TokenReview { get; set; } = _ => (500, Status(500, "InternalError", "no TokenReview answer configured"));

    public ConcurrentQueue<JsonObject> TokenReviewRequests { get; } = new();

    /// <summary>List answers, in order; the last one is repeated. An int item is an HTTP error status.</summary>
    public ConcurrentQueue<object> ListAnswers { get; } = new();

    public ConcurrentQueue<IQueryCollection> ListRequests { get; } = new();

    /// <summary>One script per watch request: the lines to stream; null ends the script by holding the stream open.</summary>
    public Channel<IReadOnlyList<JsonObject>?> WatchScripts { get; } = Channel.CreateUnbounded<IReadOnlyList<JsonObject>?>();

    public ConcurrentQueue<IQueryCollection> WatchRequests { get; } = new();

    public ConcurrentQueue<(string Namespace, string Name, string ContentType, JsonObject Body)> StatusPatches { get; } = new();

    /// <summary>Pods that exist: "ns/name" -> uid.</summary>
    public ConcurrentDictionary<string, string> Pods { get; } = new();

    public ConcurrentQueue<(string Namespace, string Name, string ContentType, JsonObject Body)> PodPatches { get; } = new();

    public ConcurrentQueue<(string Namespace, JsonObject Body)> Events { get; } = new();

    private object? _lastList;

    /// <summary>The service-account issuer's discovery document (null: 404).</summary>
    public JsonObject? Discovery { get; set; }

    /// <summary>The service-account issuer's JWKS (null: 404).</summary>
    public JsonObject? Jwks { get; set; }

    public ConcurrentQueue<string> IssuerRequests { get; } = new();

    public static async Task<FakeKubernetesApi> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        FakeKubernetesApi? self = null;
        app.MapPost("/apis/authentication.k8s.io/v1/tokenreviews", async ctx => await self!.TokenReviewAsync(ctx));
        app.MapGet(PolicyPath, async ctx => await self!.ListOrWatchAsync(ctx));
        app.MapMethods("/apis/attestbroker.io/v1/namespaces/{ns}/keyreleasepolicies/{name}/status", ["PATCH"], async ctx => await self!.PatchStatusAsync(ctx));
        app.MapMethods("/api/v1/namespaces/{ns}/pods/{name}", ["PATCH"], async ctx => await self!.PatchPodAsync(ctx));
        app.MapPost("/api/v1/namespaces/{ns}/events", async ctx => await self!.CreateEventAsync(ctx));
        app.MapGet("/.well-known/openid-configuration", async ctx => await self!.IssuerDocumentAsync(ctx, self.Discovery));
        app.MapGet("/openid/v1/jwks", async ctx => await self!.IssuerDocumentAsync(ctx, self.Jwks));
        await app.StartAsync();
        var address = app.Urls.First();
        self = new FakeKubernetesApi(app, address);
        return self;
    }

    /// <summary>A KubernetesClient pointed at this server.</summary>
    public IKubernetes Client() => new k8s.Kubernetes(new KubernetesClientConfiguration { Host = Host, DisableHttp2 = true });

    public static JsonObject Status(int code, string reason, string message) => new()
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = message,
        ["reason"] = reason,
        ["code"] = code,
    };

    public static JsonObject Policy(string ns, string name, long generation, JsonObject spec, string resourceVersion = "1", string? uid = null) => new()
    {
        ["apiVersion"] = "attestbroker.io/v1",
        ["kind"] = "KeyReleasePolicy",
        ["metadata"] = new JsonObject
        {
            ["namespace"] = ns,
            ["name"] = name,
            ["uid"] = uid ?? $"uid-{ns}-{name}",
            ["generation"] = generation,
            ["resourceVersion"] = resourceVersion,
        },
        ["spec"] = spec,
    };

    public static JsonObject List(string resourceVersion, params JsonObject[] items) => new()
    {
        ["apiVersion"] = "attestbroker.io/v1",
        ["kind"] = "KeyReleasePolicyList",
        ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion },
        ["items"] = new JsonArray(items.Select(i => (JsonNode)i.DeepClone()).ToArray()),
    };

    public static JsonObject Event(string type, JsonObject obj) => new() { ["type"] = type, ["object"] = obj.DeepClone() };

    public static JsonObject Bookmark(string resourceVersion) => Event("BOOKMARK", new JsonObject
    {
        ["apiVersion"] = "attestbroker.io/v1",
        ["kind"] = "KeyReleasePolicy",
        ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion },
    });

    public static JsonObject Gone() => Event("ERROR", Status(410, "Expired", "too old resource version"));

    private static async Task<JsonObject> BodyAsync(HttpContext ctx)
    {
        using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
        return JsonNode.Parse(await reader.ReadToEndAsync())!.AsObject();
    }

    private static Task WriteAsync(HttpContext ctx, int status, JsonNode body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(body.ToJsonString());
    }

    private async Task TokenReviewAsync(HttpContext ctx)
    {
        var body = await BodyAsync(ctx);
        TokenReviewRequests.Enqueue(body);
        var (status, answer) = TokenReview(body);
        await WriteAsync(ctx, status, answer);
    }

    private async Task ListOrWatchAsync(HttpContext ctx)
    {
        if (ctx.Request.Query["watch"] == "true")
        {
            WatchRequests.Enqueue(ctx.Request.Query);
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "application/json";
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            IReadOnlyList<JsonObject>? script;
            try
            {
                script = await WatchScripts.Reader.ReadAsync(ctx.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (script is null)
            {
                await HoldAsync(ctx);
                return;
            }

            foreach (var line in script)
            {
                await ctx.Response.WriteAsync(line.ToJsonString() + "\n", ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }

            return; // the server ends this watch
        }

        ListRequests.Enqueue(ctx.Request.Query);
        var answer = ListAnswers.TryDequeue(out var next) ? next : _lastList;
        _lastList = answer;
        switch (answer)
        {
            case int code:
                await WriteAsync(ctx, code, Status(code, "InternalError", "scripted failure"));
                break;
            case JsonObject list:
                await WriteAsync(ctx, 200, list);
                break;
            default:
                await WriteAsync(ctx, 200, List("1"));
                break;
        }
    }

    private static async Task HoldAsync(HttpContext ctx)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
    }

    private async Task PatchStatusAsync(HttpContext ctx)
    {
        var body = await BodyAsync(ctx);
        var ns = (string)ctx.Request.RouteValues["ns"]!;
        var name = (string)ctx.Request.RouteValues["name"]!;
        StatusPatches.Enqueue((ns, name, ctx.Request.ContentType ?? string.Empty, body));
        var obj = Policy(ns, name, 1, []);
        obj["status"] = body["status"]?.DeepClone();
        await WriteAsync(ctx, 200, obj);
    }

    private async Task PatchPodAsync(HttpContext ctx)
    {
        var body = await BodyAsync(ctx);
        var ns = (string)ctx.Request.RouteValues["ns"]!;
        var name = (string)ctx.Request.RouteValues["name"]!;
        PodPatches.Enqueue((ns, name, ctx.Request.ContentType ?? string.Empty, body));
        if (!Pods.TryGetValue(ns + "/" + name, out var uid))
        {
            await WriteAsync(ctx, 404, Status(404, "NotFound", $"pods \"{name}\" not found"));
            return;
        }

        // A real API server refuses a patch that would change the immutable metadata.uid.
        if (body["metadata"]?["uid"] is JsonValue v && (string?)v != uid)
        {
            await WriteAsync(ctx, 422, Status(422, "Invalid", "metadata.uid: Invalid value: field is immutable"));
            return;
        }

        await WriteAsync(ctx, 200, new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns, ["uid"] = uid, ["labels"] = body["metadata"]?["labels"]?.DeepClone() },
        });
    }

    private Task IssuerDocumentAsync(HttpContext ctx, JsonObject? document)
    {
        IssuerRequests.Enqueue(ctx.Request.Path + " " + ctx.Request.Headers.Authorization);
        return document is null ? WriteAsync(ctx, 404, Status(404, "NotFound", "not found")) : WriteAsync(ctx, 200, document);
    }

    private async Task CreateEventAsync(HttpContext ctx)
    {
        var body = await BodyAsync(ctx);
        Events.Enqueue(((string)ctx.Request.RouteValues["ns"]!, body));
        await WriteAsync(ctx, 201, body);
    }

    public async ValueTask DisposeAsync()
    {
        WatchScripts.Writer.TryComplete();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Waits for a condition the code under test makes true on another thread (bounded; fails with a message).</summary>
internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 400; i++)
        {
            if (condition())
            {
                return;
            }

            await Task.Delay(25);
        }

        NUnit.Framework.Assert.Fail("timed out waiting for: " + what);
    }
}
