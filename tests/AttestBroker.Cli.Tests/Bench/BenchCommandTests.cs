using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Bench;

[TestFixture]
public sealed class Bench_release_runs_simulated_pods_through_the_whole_protocol
{
    [Test]
    public async Task A_small_run_releases_the_expected_key_to_every_pod_and_prints_the_figures_and_targets()
    {
        var (exit, output, error) = await CliRunner.RunAsync("bench", "release", "--pods", "6", "--concurrency", "1,3", "--verify-seconds", "0.5");

        Assert.That(exit, Is.AnyOf(0, 1), error);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(output, Does.Contain("| 1 | ").And.Contain("| 3 | "), "one row per concurrency level");
            Assert.That(output, Does.Contain("verification only (TdxVerifier"));
            Assert.That(output, Does.Contain("target end-to-end >= 50"));
            Assert.That(output, Does.Contain("target p99 < 50 ms at 64 pods in flight"));
            Assert.That(output, Does.Contain("errors (failed or wrong releases): 0"), "every pod unwrapped the key the bench imported");
            Assert.That(output, Does.Not.Contain("error x"));
            Assert.That(output, Does.Match(@"protocol floor: the two HTTPS exchanges alone \(recorded requests of \d+ and \d+ bytes, recorded answers of \d+ and \d+ bytes.*errors 0"), "the floor replays the broker's own answers, and every exchange succeeds");
            Assert.That(output, Does.Match(@"elliptic-curve operations no release can skip: .* 4 x \d+\.\d+ ms = \d+\.\d+ ms CPU"));
            Assert.That(output, Does.Match(@"best any broker could reach here: a release needs at least .* end-to-end is at most \d+ % of verification-only .* target is (within reach|beyond this machine)"));
        }
    }

    [Test]
    public async Task With_a_connection_per_pod_every_pod_still_gets_its_key_and_the_floor_uses_fresh_connections_too()
    {
        var (exit, output, error) = await CliRunner.RunAsync("bench", "release", "--pods", "4", "--concurrency", "2", "--verify-seconds", "0.5", "--connections", "per-pod");

        Assert.That(exit, Is.AnyOf(0, 1), error);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(output, Does.Contain("a TLS connection of its own per pod (handshake included)"));
            Assert.That(output, Does.Contain("errors (failed or wrong releases): 0"));
            Assert.That(output, Does.Match(@"protocol floor: .*errors 0"));
        }
    }

    [TestCase("--connections", "pooled", "--connections")]
    [TestCase("--concurrency", "0", "--concurrency")]
    [TestCase("--concurrency", "1,x", "--concurrency")]
    [TestCase("--pods", "0", "--pods")]
    [TestCase("--tee", "sgx", "--tee")]
    [TestCase("--http", "3", "--http")]
    public async Task A_bad_option_value_exits_2_naming_the_option(string option, string value, string named)
    {
        var (exit, _, error) = await CliRunner.RunAsync("bench", "release", option, value);

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain(named));
    }

    [Test]
    public async Task A_running_broker_without_the_simulated_pki_exits_2_saying_what_is_needed()
    {
        var (exit, _, error) = await CliRunner.RunAsync("bench", "release", "--broker", "https://127.0.0.1:1", "--key-id", "k");

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("--sim-pki"));
    }

    [Test]
    public async Task Options_for_a_running_broker_without_broker_exit_2()
    {
        var (exit, _, error) = await CliRunner.RunAsync("bench", "release", "--key-id", "k");

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("go with --broker"));
    }

    [Test]
    public async Task A_plain_http_broker_url_exits_2()
    {
        var (exit, _, error) = await CliRunner.RunAsync("bench", "release", "--broker", "http://127.0.0.1:8080", "--sim-pki", ".", "--key-id", "k");

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("https://"));
    }
}
