using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Start_up_configuration_is_validated
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ab-server-cfg-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Without_a_certificate_dev_cert_or_explicit_plain_http_the_broker_refuses_to_start()
    {
        var ex = Assert.ThrowsAsync<BrokerStartupException>(async () => await BrokerHost.CreateAsync([], new Dictionary<string, string?> { ["Broker:DataDirectory"] = _dir }));
        Assert.That(ex!.Message, Does.Contain("Broker:AllowInsecureHttp"));
    }

    [Test]
    public void A_missing_data_directory_setting_and_an_out_of_range_nonce_lifetime_are_both_named()
    {
        var ex = Assert.ThrowsAsync<BrokerStartupException>(async () => await BrokerHost.CreateAsync([], new Dictionary<string, string?> { ["Broker:DevCertificate"] = "true", ["Broker:NonceLifetimeSeconds"] = "5" }));
        Assert.That(ex!.Message, Does.Contain("Broker:DataDirectory").And.Contain("Broker:NonceLifetimeSeconds"));
    }

    [Test]
    public void A_policy_file_in_the_data_directory_that_is_invalid_stops_the_start_with_its_name()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "policies"));
        File.WriteAllText(Path.Combine(_dir, "policies", "k1.yaml"), "name: p\nversion: 1\ntee: [tdx]\n");
        var ex = Assert.ThrowsAsync<BrokerStartupException>(async () => await BrokerHost.CreateAsync([], new Dictionary<string, string?> { ["Broker:DataDirectory"] = _dir, ["Broker:AllowInsecureHttp"] = "true", ["Broker:Port"] = "0" }));
        Assert.That(ex!.Message, Does.Contain("k1.yaml"));
    }

    [Test]
    public async Task Plain_http_with_the_explicit_setting_serves_health_and_loads_policies_from_the_data_directory()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "policies"));
        var env = Shared.Env;
        await File.WriteAllTextAsync(Path.Combine(_dir, "policies", "k1.yaml"), env.TdxPolicy("file-policy"));
        await using var host = await BrokerHost.CreateAsync([], new Dictionary<string, string?>
        {
            ["Broker:DataDirectory"] = _dir, ["Broker:AllowInsecureHttp"] = "true", ["Broker:Port"] = "0", ["Logging:LogLevel:Default"] = "Error",
        });
        await host.StartAsync();
        Assert.That(host.Addresses.Single().Scheme, Is.EqualTo("http"));
        using var client = new HttpClient { BaseAddress = host.Addresses.Single() };
        Assert.That((int)(await client.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode, Is.EqualTo(200));
        Assert.That((int)(await client.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode, Is.EqualTo(200));
        Assert.That((await host.Data.Storage.Policies.GetCurrentAsync("k1"))?.Version, Is.EqualTo(1));
    }
}

[TestFixture]
public sealed class Published_documents_are_served
{
    [Test]
    public async Task The_OpenAPI_document_lists_the_challenge_and_attest_operations()
    {
        var doc = JsonNode.Parse(await Shared.Broker.Client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)))!;
        Assert.That(doc["paths"]!["/v1/challenge"]!["post"], Is.Not.Null);
        Assert.That(doc["paths"]!["/v1/attest"]!["post"], Is.Not.Null);
    }

    [Test]
    public async Task An_unknown_path_is_a_404_problem()
    {
        using var response = await Shared.Broker.Client.GetAsync(new Uri("/v1/nothing-here", UriKind.Relative));
        Assert.That(((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType), Is.EqualTo((404, "application/problem+json")));
    }
}

[TestFixture]
public sealed class Clients_over_the_rate_limit_get_429
{
    [Test]
    public async Task The_third_request_in_a_minute_with_a_limit_of_two_is_429_rate_limited()
    {
        await using var broker = await RunningBroker.StartAsync(Shared.Env, _ => Task.CompletedTask, new Dictionary<string, string?> { ["Broker:RateLimitPerMinute"] = "2" });
        var statuses = new List<int>();
        JsonNode? last = null;
        for (var i = 0; i < 3; i++)
        {
            var (status, body, _) = await broker.PostAsync("/v1/challenge", $"{{\"tee\":\"{TeeKind.Tdx.ToWireName()}\"}}");
            statuses.Add(status);
            last = body;
        }

        Assert.That(statuses, Is.EqualTo(new[] { 200, 200, 429 }));
        Assert.That(Shared.Code(last), Is.EqualTo(ProblemCodes.RateLimited));
    }
}
