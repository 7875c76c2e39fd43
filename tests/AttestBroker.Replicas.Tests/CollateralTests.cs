using AttestBroker.HardwareSim.Http;
using AttestBroker.Server.Tests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Replicas.Tests;

/// <summary>The simulator's Intel PCS / AMD KDS (attest-sim serve's logic) on 127.0.0.1, stoppable mid-test.</summary>
internal sealed class SimCollateralService : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _stopped;

    private SimCollateralService(WebApplication app, Uri baseUri)
    {
        _app = app;
        BaseUri = baseUri;
    }

    public Uri BaseUri { get; }

    public static async Task<SimCollateralService> StartAsync(BrokerTestEnvironment env, TimeProvider time)
    {
        var service = new SimHttpService(env.Pki, [], [], new SimServerBehaviour { RetryAfterSeconds = 0 }, time);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(async context =>
        {
            var query = context.Request.Query.ToDictionary(kv => kv.Key, kv => kv.Value.ToString(), StringComparer.Ordinal);
            var response = await service.HandleAsync(context.Request.Method, context.Request.Path.Value ?? "/", query, ReadOnlyMemory<byte>.Empty, context.RequestAborted);
            context.Response.StatusCode = response.Status;
            context.Response.ContentType = response.ContentType;
            foreach (var (k, v) in response.Headers)
            {
                context.Response.Headers[k] = v;
            }

            await context.Response.Body.WriteAsync(response.Body, context.RequestAborted);
        });
        await app.StartAsync();
        return new SimCollateralService(app, new Uri(app.Urls.Single().Replace("[::1]", "127.0.0.1", StringComparison.Ordinal) + "/"));
    }

    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            await _app.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _app.DisposeAsync();
    }
}

[TestFixture]
[NonParallelizable]
public sealed class The_collateral_service_down
{
    [Test]
    public async Task Cached_collateral_serves_within_its_validity_and_past_it_release_fails_closed_with_503_and_the_reason()
    {
        var cs = ReplicaCluster.RequirePostgres();
        var simTime = new ManualTime(BrokerTestEnvironment.Issued.AddHours(1));
        await using var pcs = await SimCollateralService.StartAsync(Assembly.Env, simTime);
        // No collateral files: everything comes from the (simulated) PCS through the fetch cache.
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 1, extra: new Dictionary<string, string?>
        {
            ["Broker:FetchCollateral"] = "true",
            ["Broker:IntelPcsUrl"] = pcs.BaseUri.AbsoluteUri,
            ["Broker:AmdKdsUrl"] = pcs.BaseUri.AbsoluteUri,
            ["Broker:CollateralPaths:0"] = null,
        });
        var replica = cluster.Replicas[0];

        var first = await A_key_backend_down.AttestOnceAsync(cluster, replica);
        Assert.That(first.Status, Is.EqualTo(200), "collateral fetched from the PCS: " + first.Body?.ToJsonString());

        await pcs.StopAsync();
        cluster.Time.Advance(TimeSpan.FromDays(1));
        var cached = await A_key_backend_down.AttestOnceAsync(cluster, replica);
        Assert.That(cached.Status, Is.EqualTo(200), "the PCS is down but the cached collateral is still valid: " + cached.Body?.ToJsonString());

        cluster.Time.Advance(TimeSpan.FromDays(30));
        var (status, body) = await A_key_backend_down.AttestOnceAsync(cluster, replica);
        Assert.That(status, Is.EqualTo(503), body?.ToJsonString());
        Assert.That((string?)body?["type"], Is.EqualTo("urn:attestbroker:problem:collateral-unavailable"));
        Assert.That((string?)body?["reason"], Does.Contain("could not be reached"));

        var rows = await cluster.AuditRowsAsync();
        Assert.That(rows.Last().Event["reasons"]?[0]?.GetValue<string>(), Is.EqualTo("collateral-unavailable"), "the refusal is audited");
        Assert.That(rows.Count(r => (string?)r.Event["decision"] == "granted"), Is.EqualTo(2));
    }
}

[TestFixture]
[NonParallelizable]
public sealed class Collateral_fetched_by_one_replica
{
    [Test]
    public async Task Is_served_by_the_others_from_the_database_while_the_collateral_service_is_down()
    {
        var cs = ReplicaCluster.RequirePostgres();
        var simTime = new ManualTime(BrokerTestEnvironment.Issued.AddHours(1));
        await using var pcs = await SimCollateralService.StartAsync(Assembly.Env, simTime);
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 2, extra: new Dictionary<string, string?>
        {
            ["Broker:FetchCollateral"] = "true",
            ["Broker:IntelPcsUrl"] = pcs.BaseUri.AbsoluteUri,
            ["Broker:AmdKdsUrl"] = pcs.BaseUri.AbsoluteUri,
            ["Broker:CollateralPaths:0"] = null,
        });

        var first = await A_key_backend_down.AttestOnceAsync(cluster, cluster.Replicas[0]);
        Assert.That(first.Status, Is.EqualTo(200), "replica 0 fetched the collateral from the PCS: " + first.Body?.ToJsonString());

        await pcs.StopAsync();
        var second = await A_key_backend_down.AttestOnceAsync(cluster, cluster.Replicas[1]);
        Assert.That(second.Status, Is.EqualTo(200), "replica 1 never fetched; the PCS is down; the database holds what replica 0 fetched: " + second.Body?.ToJsonString());

        // A pod started after the PCS went down (empty memory, empty data directory) serves it too.
        await using var late = await cluster.StartReplicaAsync(5);
        var third = await A_key_backend_down.AttestOnceAsync(cluster, late);
        Assert.That(third.Status, Is.EqualTo(200), third.Body?.ToJsonString());
        Assert.That(Directory.Exists(Path.Combine(cluster.Root, "replica-1", "collateral-cache")), Is.False, "nothing is cached per replica on disk");

        // Past the collateral's validity the stored rows are stale: refused, not served.
        cluster.Time.Advance(TimeSpan.FromDays(31));
        var (status, body) = await A_key_backend_down.AttestOnceAsync(cluster, cluster.Replicas[1]);
        Assert.That(status, Is.EqualTo(503), body?.ToJsonString());
        Assert.That((string?)body?["type"], Is.EqualTo("urn:attestbroker:problem:collateral-unavailable"));

        var rows = await cluster.Db.Storage.Collateral.PurgeStaleAsync(DateTimeOffset.MaxValue);
        Assert.That(rows, Is.GreaterThanOrEqualTo(4), "TCB Info, QE Identity, the PCK CRL and the root CA CRL are rows of the shared database");
    }
}
