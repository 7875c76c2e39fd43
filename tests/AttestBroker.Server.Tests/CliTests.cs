using AttestBroker.Cli;
using AttestBroker.Storage;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Admin_commands_prepare_a_data_directory_the_broker_releases_from
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ab-server-cli-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await CliApp.RunAsync(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public async Task Key_import_and_policy_set_store_the_wrapped_key_and_a_policy_version_and_audit_the_change()
    {
        var data = Path.Combine(_dir, "data");
        var keyFile = Path.Combine(_dir, "model.key");
        await File.WriteAllTextAsync(keyFile, Convert.ToBase64String(Shared.KeyBytes("cli")) + "\n");
        var policyFile = Path.Combine(_dir, "policy.yaml");
        await File.WriteAllTextAsync(policyFile, Shared.Env.TdxPolicy("cli-policy"));

        var import = await RunAsync("admin", "key", "import", "--data-dir", data, "--id", "cli-key", "--key-file", keyFile);
        var set = await RunAsync("admin", "policy", "set", "--data-dir", data, "--key", "cli-key", "--file", policyFile);
        var list = await RunAsync("admin", "key", "list", "--data-dir", data);
        Assert.That((import.Exit, set.Exit, list.Exit), Is.EqualTo((0, 0, 0)), import.Err + set.Err + list.Err);
        Assert.That(list.Out, Does.Contain("cli-key\tEnabled\tpolicy version 1"));
        Assert.That(import.Out + list.Out, Does.Not.Contain(Convert.ToBase64String(Shared.KeyBytes("cli"))));

        await using var opened = await BrokerData.OpenAsync(data);
        var released = new byte[32];
        await opened.Keys.GetForReleaseAsync("cli-key", released);
        Assert.That(released, Is.EqualTo(Shared.KeyBytes("cli")));
        var audit = await opened.Storage.Audit.ReadAsync(1, 10);
        Assert.That(audit.Select(a => a.Kind), Is.EqualTo(new[] { "policy.set" }));
    }

    [Test]
    public async Task Policy_set_with_an_invalid_policy_exits_2_and_stores_nothing()
    {
        var data = Path.Combine(_dir, "data");
        var policyFile = Path.Combine(_dir, "policy.yaml");
        await File.WriteAllTextAsync(policyFile, "name: p\nversion: 1\ntee: [tdx]\nallowDebugg: true\n");
        var (exit, _, err) = await RunAsync("admin", "policy", "set", "--data-dir", data, "--key", "k", "--file", policyFile);
        Assert.That(exit, Is.EqualTo(ExitCodes.Usage));
        Assert.That(err, Does.Contain("allowDebugg"));
        await using var opened = await BrokerData.OpenAsync(data);
        Assert.That(await opened.Storage.Policies.GetCurrentAsync("k"), Is.Null);
    }

    [Test]
    public async Task Key_import_of_a_file_that_is_not_a_key_exits_2()
    {
        var keyFile = Path.Combine(_dir, "bad.key");
        await File.WriteAllTextAsync(keyFile, "not a key");
        var (exit, _, err) = await RunAsync("admin", "key", "import", "--data-dir", Path.Combine(_dir, "data"), "--id", "k", "--key-file", keyFile);
        Assert.That(exit, Is.EqualTo(ExitCodes.Usage));
        Assert.That(err, Does.Contain("--key-file"));
    }

    [Test]
    public async Task Serve_without_https_or_the_explicit_plain_http_flag_exits_2_naming_the_choices()
    {
        var (exit, _, err) = await RunAsync("serve", "--data-dir", Path.Combine(_dir, "data"), "--port", "0");
        Assert.That(exit, Is.EqualTo(ExitCodes.Usage));
        Assert.That(err, Does.Contain("Broker:AllowInsecureHttp"));
    }
}
