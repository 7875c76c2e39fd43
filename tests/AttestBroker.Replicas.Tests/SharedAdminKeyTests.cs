using System.Net.Http.Headers;
using System.Security.Cryptography;
using AttestBroker.Server;
using AttestBroker.Server.Admin;
using AttestBroker.Server.Tests;

namespace AttestBroker.Replicas.Tests;

[TestFixture]
[NonParallelizable]
public sealed class The_admin_keys_of_replicas
{
    [Test]
    public async Task Come_from_the_shared_files_so_every_replica_has_one_audit_head_key_and_accepts_one_admin_signer()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 2);
        var shared = Path.Combine(cluster.Root, "shared");
        using var head = ECDsa.Create();
        head.ImportPkcs8PrivateKey(await File.ReadAllBytesAsync(Path.Combine(shared, "audit-head.key")), out _);
        using var admin = ECDsa.Create();
        admin.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(shared, "admin-signing.key")));
        var token = AdminTokens.Mint(admin, "auditor@test", [AdminRoles.Auditor], cluster.Time.GetUtcNow(), TimeSpan.FromMinutes(5));

        foreach (var r in cluster.Replicas)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/v1/admin/audit/head-key", UriKind.Relative));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await r.Client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.That((int)response.StatusCode, Is.EqualTo(200), $"replica {r.Index} accepts a token from the shared admin signing key: {text}");
            var body = System.Text.Json.Nodes.JsonNode.Parse(text)!;
            Assert.That((string?)body["public_key_pem"], Is.EqualTo(head.ExportSubjectPublicKeyInfoPem()), $"replica {r.Index} signs heads with the shared key");
            Assert.That(File.Exists(Path.Combine(cluster.Root, "replica-" + r.Index, AdminSetup.AuditHeadKeyFile)), Is.False, "no key of its own is made");
            Assert.That(File.Exists(Path.Combine(cluster.Root, "replica-" + r.Index, AdminTokens.SigningKeyFile)), Is.False);
        }
    }

    [Test]
    public async Task Without_the_local_signer_no_admin_signing_key_is_needed()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 1);
        var settings = cluster.SettingsFor(6);
        settings.Remove("Broker:Secrets:AdminSigningKeyFile");
        settings["Broker:Admin:LocalSigner"] = "false";

        await using var host = await BrokerHost.CreateAsync([], settings, cluster.Time);
        Assert.That(File.Exists(Path.Combine(cluster.Root, "replica-6", AdminTokens.SigningKeyFile)), Is.False);
    }

    [TestCase("Broker:Secrets:AuditHeadKeyFile")]
    [TestCase("Broker:Secrets:AdminSigningKeyFile")]
    public async Task A_named_key_file_that_does_not_exist_is_refused_rather_than_created(string setting)
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 1);
        var settings = cluster.SettingsFor(8);
        var missing = Path.Combine(cluster.Root, "no-such.key");
        settings[setting] = missing;

        var ex = Assert.ThrowsAsync<BrokerStartupException>(() => BrokerHost.CreateAsync([], settings, cluster.Time));
        Assert.That(ex!.Message, Does.Contain(setting).And.Contain("does not exist").And.Contain("openssl genpkey"));
        Assert.That(File.Exists(missing), Is.False);
    }

    [Test]
    public async Task A_key_file_that_is_not_a_p256_private_key_is_refused_naming_the_file()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs, count: 1);
        var settings = cluster.SettingsFor(9);
        var wrong = Path.Combine(cluster.Root, "p384.key");
        using (var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384))
        {
            await File.WriteAllBytesAsync(wrong, p384.ExportPkcs8PrivateKey());
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(wrong, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        settings["Broker:Secrets:AuditHeadKeyFile"] = wrong;
        var ex = Assert.ThrowsAsync<BrokerStartupException>(() => BrokerHost.CreateAsync([], settings, cluster.Time));
        Assert.That(ex!.Message, Does.Contain(wrong).And.Contain("P-256"));
    }
}
