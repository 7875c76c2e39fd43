using System.Text.Json.Nodes;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Demo;

[TestFixture]
public sealed class Audit_verify_passes_on_the_demo_data_directory
{
    [Test]
    public async Task Audit_verify_on_the_kept_demo_data_dir_exits_0_with_all_rows_intact()
    {
        var (exit, output, error) = await CliRunner.RunAsync("audit", "verify", "--data-dir", DemoRunOnce.CopyDataDir());
        Assert.That(exit, Is.Zero, error);
        Assert.That(output, Does.Contain("audit chain intact: 4 rows"));
    }
}

[TestFixture]
public sealed class Audit_verify_names_the_tampered_row
{
    [Test]
    public async Task An_edited_audit_row_makes_audit_verify_exit_1_naming_the_row_as_edited()
    {
        var dir = DemoRunOnce.CopyDataDir();
        await DemoRunOnce.TamperAsync(dir, "UPDATE audit_log SET event_json = replace(event_json, '\"decision\":\"denied\"', '\"decision\":\"granted\"') WHERE seq = 3");
        var (exit, output, _) = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(output, Does.StartWith("audit chain broken at row 3: edited"));
    }

    [Test]
    public async Task A_deleted_audit_row_makes_audit_verify_exit_1_naming_the_row_as_deleted()
    {
        var dir = DemoRunOnce.CopyDataDir();
        await DemoRunOnce.TamperAsync(dir, "DELETE FROM audit_log WHERE seq = 2");
        var (exit, output, _) = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(output, Does.StartWith("audit chain broken at row 2: deleted"));
    }

    [Test]
    public async Task Two_swapped_audit_rows_make_audit_verify_exit_1_naming_the_first_as_reordered()
    {
        var dir = DemoRunOnce.CopyDataDir();
        await DemoRunOnce.TamperAsync(dir, "UPDATE audit_log SET seq = 100 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 100;");
        var (exit, output, _) = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(output, Does.StartWith("audit chain broken at row 2: reordered"));
    }
}

[TestFixture]
public sealed class Audit_verify_rejects_a_head_key_file_that_is_not_an_ec_public_key
{
    [Test]
    public async Task A_head_key_file_without_a_pem_key_exits_2_with_a_head_key_error()
    {
        var dir = DemoRunOnce.CopyDataDir();
        var file = Path.Combine(dir, "not-a-key.pem");
        await File.WriteAllTextAsync(file, "hello\n");
        var (exit, output, error) = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir, "--head-key", file);
        Assert.That((exit, output), Is.EqualTo((2, string.Empty)));
        Assert.That(error, Does.StartWith("error: --head-key:"));
    }

    [Test]
    public async Task The_brokers_audit_head_public_key_verifies_the_heads_it_signed_and_the_intact_chain_exits_0()
    {
        var dir = DemoRunOnce.CopyDataDir();
        var file = Path.Combine(dir, "head.pub.pem");
        using (var key = System.Security.Cryptography.ECDsa.Create())
        {
            key.ImportPkcs8PrivateKey(await File.ReadAllBytesAsync(Path.Combine(dir, "audit-head.key")), out _);
            await File.WriteAllTextAsync(file, key.ExportSubjectPublicKeyInfoPem());
        }

        var (exit, output, error) = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir, "--head-key", file);
        Assert.That(exit, Is.Zero, error);
        Assert.That(output, Does.Contain("chain intact").And.Match(@"[1-9]\d* signed heads verified"));
    }

    [Test]
    public async Task Another_p256_key_makes_audit_verify_exit_1_naming_the_head_signature()
    {
        var dir = DemoRunOnce.CopyDataDir();
        var file = Path.Combine(dir, "other.pub.pem");
        using (var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256))
        {
            await File.WriteAllTextAsync(file, key.ExportSubjectPublicKeyInfoPem());
        }

        var (exit, output, _) = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir, "--head-key", file);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(output, Does.Contain("head signature invalid"));
    }
}

[TestFixture]
public sealed class Audit_export_writes_one_json_object_per_row
{
    [Test]
    public async Task Audit_export_prints_every_row_as_a_json_line_in_sequence_order()
    {
        var (exit, output, error) = await CliRunner.RunAsync("audit", "export", "--data-dir", DemoRunOnce.CopyDataDir());
        Assert.That(exit, Is.Zero, error);
        var rows = CliRunner.JsonLines(output);
        Assert.That(rows.Select(r => (long?)r["seq"]), Is.EqualTo(new long?[] { 1, 2, 3, 4 }));
        Assert.That(rows.Select(r => r["event"]?["kind"]?.GetValue<string>()), Does.Contain("policy.set"));
    }

    [Test]
    public async Task Audit_export_with_out_writes_the_same_lines_to_the_file()
    {
        var dir = DemoRunOnce.CopyDataDir();
        var file = Path.Combine(dir, "audit.jsonl");
        var (exit, _, error) = await CliRunner.RunAsync("audit", "export", "--data-dir", dir, "--out", file);
        Assert.That(exit, Is.Zero, error);
        var lines = (await File.ReadAllLinesAsync(file)).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.That(lines, Has.Count.EqualTo(4));
        Assert.That(error, Does.Contain("exported 4 rows"));
    }
}

[TestFixture]
public sealed class Audit_commands_reject_a_directory_without_a_database
{
    [Test]
    public async Task Audit_verify_on_a_directory_without_a_database_exits_2_and_creates_nothing()
    {
        var dir = Path.Combine(DemoRunOnce.Root, "empty-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var (exit, _, error) = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("holds no attestbroker.db"));
        Assert.That(Directory.EnumerateFileSystemEntries(dir), Is.Empty);
    }
}
