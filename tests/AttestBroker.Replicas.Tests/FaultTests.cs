using System.Security.Cryptography;
using AttestBroker.Evidence;
using AttestBroker.Keys;
using AttestBroker.Protocol;
using AttestBroker.Server;
using AttestBroker.Server.Tests;
using AttestBroker.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace AttestBroker.Replicas.Tests;

[TestFixture]
[NonParallelizable]
public sealed class A_replica_stopped_mid_load
{
    [Test]
    public async Task Clients_retry_on_the_others_no_nonce_is_granted_twice_and_the_chain_has_no_gap()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        var pods = Assembly.FaultPods;
        Task? kill = null;

        var result = await LoadDriver.RunAsync(cluster, pods, Assembly.Concurrency, done =>
        {
            if (done == pods / 3)
            {
                kill = cluster.Replicas[1].KillAsync();
            }

            return Task.CompletedTask;
        });
        await kill!;
        TestContext.Progress.WriteLine(result.Summary("replica 1 killed after a third of the pods", pods));

        Assert.That(result.Unexpected, Is.Empty);
        Assert.That(result.Granted + result.Denied, Is.EqualTo(pods), "every pod got its decision from a surviving replica");
        Assert.That(result.ConnectionErrors, Is.GreaterThan(0), "the stop was felt by clients (else the test proved nothing)");
        await AuditAssert.DecisionsAsync(cluster, result, exact: false);
    }
}

[TestFixture]
[NonParallelizable]
public sealed class PostgreSQL_restarted_mid_load
{
    [Test]
    public async Task Requests_get_503_problems_while_it_is_down_readiness_follows_and_the_replicas_recover_without_restart()
    {
        ReplicaCluster.RequirePostgres();
        if (PrivatePostgres.FindBinaries(out var reason) is null)
        {
            Assert.Ignore(reason);
        }

        await using var pg = await PrivatePostgres.StartAsync();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, pg.ConnectionString);
        var pods = Assembly.FaultPods;
        var down = new TaskCompletionSource();
        var restarted = new TaskCompletionSource();
        var readyWhileDown = new List<(int Status, string? Type, string? MediaType)>();

        async Task OutageAsync()
        {
            await down.Task;
            await pg.StopServerAsync();
            // While it is down: every replica reports not ready, with the database named.
            foreach (var r in cluster.Replicas)
            {
                var (status, body, media) = await r.GetAsync("/readyz");
                readyWhileDown.Add((status, (string?)body?["type"], media));
                Assert.That((string?)body?["checks"]?["database"], Does.StartWith("unavailable"));
            }

            await Task.Delay(TimeSpan.FromSeconds(2)); // pods keep arriving meanwhile
            await pg.StartServerAsync();
            restarted.SetResult();
        }

        var outage = OutageAsync();
        var result = await LoadDriver.RunAsync(cluster, pods, Assembly.Concurrency, done =>
        {
            if (done == pods / 3)
            {
                down.TrySetResult();
            }

            return Task.CompletedTask;
        });
        await outage;
        TestContext.Progress.WriteLine(result.Summary("PostgreSQL stopped (immediate) after a third of the pods, started 2 s later", pods));

        Assert.That(readyWhileDown, Is.All.EqualTo((503, (string?)"urn:attestbroker:problem:backend-unavailable", (string?)"application/problem+json")));
        Assert.That(result.Unexpected, Is.Empty);
        Assert.That(result.Granted + result.Denied, Is.EqualTo(pods), "every pod got its decision once the database was back");
        Assert.That(result.Gave503, Is.GreaterThan(0), "requests during the outage were refused with 503 (else the outage was not felt)");
        Assert.That(result.Problems503.Select(p => (string?)p["type"]), Is.All.EqualTo("urn:attestbroker:problem:backend-unavailable"));
        Assert.That(result.Problems503.Select(p => (string?)p["backend"]), Is.All.AnyOf("storage", "keystore"));
        foreach (var r in cluster.Replicas)
        {
            var (status, body, _) = await r.GetAsync("/readyz");
            Assert.That(status, Is.EqualTo(200), $"replica {r.Index} ready again without restart: {body?.ToJsonString()}");
        }

        // The admin opening of the database was idle during the outage: its first statement meets a dead pooled
        // connection (and clears the pool); the next one reconnects.
        for (var i = 0; ; i++)
        {
            try
            {
                await cluster.Db.Storage.SchemaVersionAsync();
                break;
            }
            catch (StorageException) when (i < 3)
            {
            }
        }

        await AuditAssert.DecisionsAsync(cluster, result, exact: false);
    }
}

[TestFixture]
[NonParallelizable]
public sealed class A_key_backend_down
{
    [Test]
    public async Task Release_gets_a_503_naming_the_keystore_and_its_cause_and_works_again_when_it_returns()
    {
        var cs = ReplicaCluster.RequirePostgres();
        var switches = new SwitchableKeyBackend[3];
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, configure: (i, b) =>
        {
            // The broker registers its key backend (the router) through a factory: wrap whatever it makes.
            var d = b.Services.Last(s => s.ServiceType == typeof(IKeyBackend));
            var swap = switches[i] = new SwitchableKeyBackend();
            b.Services.Remove(d);
            b.Services.AddSingleton<IKeyBackend>(sp =>
            {
                swap.Inner = d.ImplementationInstance as IKeyBackend ?? (IKeyBackend)d.ImplementationFactory!(sp);
                return swap;
            });
        });
        var replica = cluster.Replicas[2];
        switches[2].Down = true;

        var (status, body) = await AttestOnceAsync(cluster, replica);
        Assert.That(status, Is.EqualTo(503));
        Assert.That((string?)body?["type"], Is.EqualTo("urn:attestbroker:problem:backend-unavailable"));
        Assert.That((string?)body?["backend"], Is.EqualTo("keystore"));
        Assert.That((string?)body?["cause"], Is.EqualTo(nameof(KeyError.StorageFailed)));
        var ready = await replica.GetAsync("/readyz");
        Assert.That(ready.Status, Is.EqualTo(503));
        Assert.That((string?)ready.Body?["checks"]?["keystore"], Does.StartWith("unavailable"));
        Assert.That((string?)ready.Body?["checks"]?["database"], Is.EqualTo("ok"));
        Assert.That((await AttestOnceAsync(cluster, cluster.Replicas[0])).Status, Is.EqualTo(200), "the other replicas are unaffected");

        switches[2].Down = false;
        Assert.That((await AttestOnceAsync(cluster, replica)).Status, Is.EqualTo(200));
        Assert.That((await replica.GetAsync("/readyz")).Status, Is.EqualTo(200));
    }

    internal static async Task<(int Status, System.Text.Json.Nodes.JsonNode? Body)> AttestOnceAsync(ReplicaCluster cluster, Replica replica, string keyId = ReplicaCluster.GrantKey)
    {
        using var key = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(key);
        var challenge = (await replica.ChallengeAsync(TeeKind.Tdx))!.Value;
        return await replica.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge.Challenge, cluster.Env.Evidence(TeeKind.Tdx, challenge.Nonce, jwk), jwk, keyId));
    }
}

[TestFixture]
[NonParallelizable]
public sealed class Changes_made_through_one_replica_apply_on_every_other_at_the_next_request
{
    [Test]
    public async Task A_key_disabled_and_re_enabled_through_one_opening_of_the_database_is_refused_then_released_by_every_replica()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        foreach (var r in cluster.Replicas)
        {
            Assert.That((await A_key_backend_down.AttestOnceAsync(cluster, r)).Status, Is.EqualTo(200));
        }

        await cluster.Db.Keys.DisableAsync(ReplicaCluster.GrantKey);
        foreach (var r in cluster.Replicas)
        {
            var (status, body) = await A_key_backend_down.AttestOnceAsync(cluster, r);
            Assert.That((status, (string?)body?["code"]), Is.EqualTo((403, (string?)"key-disabled")), $"replica {r.Index}");
        }

        await cluster.Db.Keys.EnableAsync(ReplicaCluster.GrantKey);
        foreach (var r in cluster.Replicas)
        {
            Assert.That((await A_key_backend_down.AttestOnceAsync(cluster, r)).Status, Is.EqualTo(200), $"replica {r.Index}");
        }
    }

    [Test]
    public async Task A_new_policy_version_is_applied_by_every_replica_on_the_next_request()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        await cluster.Db.SetPolicyAsync(ReplicaCluster.GrantKey, cluster.Env.TdxPolicy("tdx-pinned-elsewhere", mrTd: ReplicaCluster.OtherMrTd), "test", cluster.Time.GetUtcNow());
        foreach (var r in cluster.Replicas)
        {
            var (status, body) = await A_key_backend_down.AttestOnceAsync(cluster, r);
            Assert.That((status, (string?)body?["code"]), Is.EqualTo((403, (string?)"policy-denied")), $"replica {r.Index}");
            Assert.That((string?)body?["keys"]?[0]?["policy"], Is.EqualTo("tdx-pinned-elsewhere"));
        }
    }
}

[TestFixture]
[NonParallelizable]
public sealed class Start_up_on_PostgreSQL
{
    [Test]
    public async Task Replicas_starting_together_on_an_empty_schema_migrate_it_once_and_all_serve()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        var version = await cluster.Db.Storage.SchemaVersionAsync();
        Assert.That(version, Is.GreaterThan(0));
        foreach (var r in cluster.Replicas)
        {
            var (status, body, _) = await r.GetAsync("/readyz");
            Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
            Assert.That((string?)body?["checks"]?["collateral"], Does.StartWith("fresh until"));
        }
    }

    [TestCase("Broker:Secrets:KekDirectory", "the KEK")]
    [TestCase("Broker:Secrets:NonceSecretFile", "the challenge MAC secret")]
    [TestCase("Broker:Secrets:TokenSigningKeyFile", "the token-signing key")]
    [TestCase("Broker:Secrets:AuditHeadKeyFile", "the audit-head key")]
    [TestCase("Broker:Secrets:AdminSigningKeyFile", "the local admin signing key")]
    public async Task A_broker_whose_secret_would_be_made_per_replica_refuses_to_start_and_names_it(string setting, string named)
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 1);
        var settings = cluster.SettingsFor(7);
        settings.Remove(setting);

        var ex = Assert.ThrowsAsync<BrokerStartupException>(() => BrokerHost.CreateAsync([], settings, cluster.Time));
        Assert.That(ex!.Message, Does.Contain(named).And.Contain(setting).And.Contain("AllowGeneratedSecrets"));
        Assert.That(ex.Message, Does.Not.Contain(cs), "the connection string is never repeated");
    }

    [Test]
    public async Task A_shared_secret_file_that_does_not_exist_is_refused_rather_than_created()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 1);
        var settings = cluster.SettingsFor(8);
        var missing = Path.Combine(cluster.Root, "no-such-nonce.key");
        settings["Broker:Secrets:NonceSecretFile"] = missing;

        var ex = Assert.ThrowsAsync<BrokerStartupException>(() => BrokerHost.CreateAsync([], settings, cluster.Time));
        Assert.That(ex!.Message, Does.Contain("does not exist"));
        Assert.That(File.Exists(missing), Is.False);
    }

    [Test]
    public async Task An_unreachable_database_stops_the_start_with_the_storage_named_and_no_connection_string()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 1);
        var settings = cluster.SettingsFor(9);
        settings["Broker:Storage:ConnectionString"] = "Host=127.0.0.1;Port=1;Username=postgres;Password=never-shown;Database=postgres;Timeout=2";

        var ex = Assert.ThrowsAsync<BrokerStartupException>(() => BrokerHost.CreateAsync([], settings, cluster.Time));
        Assert.That(ex!.Message, Does.StartWith("Broker:Storage (postgres)"));
        Assert.That(ex.Message, Does.Not.Contain("never-shown"));
    }

    [Test]
    public async Task Concurrent_audit_appends_from_every_replica_and_connection_stay_one_chain()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        var before = (await cluster.AuditRowsAsync()).Count;
        var now = cluster.Time.GetUtcNow();

        // 3 replicas x 4 writers x 25 appends, each replica through its own connection pool.
        await Task.WhenAll(cluster.Replicas.SelectMany(r => Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var storage = r.Host.App.Services.GetRequiredService<IBrokerStorage>();
            for (var i = 0; i < 25; i++)
            {
                await storage.Audit.AppendAsync(new AuditEvent("test.append", now, $"replica-{r.Index}-writer-{w}", Details: new Dictionary<string, string> { ["i"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture) }));
            }
        }))));

        var verification = await cluster.Db.Storage.Audit.VerifyAsync();
        Assert.That(verification.IsValid, Is.True, verification.FirstBreak?.Detail);
        Assert.That(verification.LastSequence, Is.EqualTo(before + 300));
    }
}
