using System.Security.Cryptography;
using AttestBroker.Storage;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Db;

[TestFixture]
public sealed class Db_migrate_and_status
{
    [Test]
    public async Task Migrate_on_SQLite_applies_the_migrations_once_and_status_reports_the_version()
    {
        var dir = Directory.CreateTempSubdirectory("ab-cli-db-").FullName;
        try
        {
            var (status0, out0, _) = await CliRunner.RunAsync("db", "status", "--provider", "sqlite", "--data-dir", dir);
            Assert.That(status0, Is.EqualTo(0));
            Assert.That(out0, Does.Contain("schema version 0 (not migrated)"));

            var (exit1, out1, err1) = await CliRunner.RunAsync("db", "migrate", "--provider", "sqlite", "--data-dir", dir);
            Assert.That(exit1, Is.EqualTo(0), err1);
            Assert.That(out1, Does.Contain("applied 1"));

            var (exit2, out2, _) = await CliRunner.RunAsync("db", "migrate", "--provider", "sqlite", "--data-dir", dir);
            Assert.That(exit2, Is.EqualTo(0));
            Assert.That(out2, Does.Contain("nothing to apply"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task Migrate_on_PostgreSQL_reads_the_connection_string_from_a_file_and_never_prints_it()
    {
        var cs = Environment.GetEnvironmentVariable("ATTESTBROKER_TEST_POSTGRES");
        if (string.IsNullOrWhiteSpace(cs))
        {
            Assert.Ignore("ATTESTBROKER_TEST_POSTGRES is not set: this test needs an Npgsql connection string to a database it may create schemas in");
        }

        var dir = Directory.CreateTempSubdirectory("ab-cli-db-").FullName;
        var schema = "abcli_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5));
        var file = Path.Combine(dir, "pg.conn");
        await File.WriteAllTextAsync(file, cs);
        try
        {
            var (exit, output, err) = await CliRunner.RunAsync("db", "migrate", "--provider", "postgres", "--schema", schema, "--connection-string-file", file);
            Assert.That(exit, Is.EqualTo(0), err);
            Assert.That(output, Does.Contain($"postgres schema {schema}: schema version").And.Contain("applied 1"));
            Assert.That(output + err, Does.Not.Contain(cs!));

            var (exit2, output2, _) = await CliRunner.RunAsync("db", "status", "--provider", "postgres", "--schema", schema, "--connection-string-file", file);
            Assert.That(exit2, Is.EqualTo(0));
            Assert.That(output2, Does.Not.Contain("not migrated"));
        }
        finally
        {
            await using (var pg = new PostgresStorage(cs!, schema))
            {
                await pg.DropSchemaAsync();
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task An_unreachable_database_exits_1_naming_the_storage_and_usage_errors_exit_2()
    {
        var dir = Directory.CreateTempSubdirectory("ab-cli-db-").FullName;
        var file = Path.Combine(dir, "pg.conn");
        await File.WriteAllTextAsync(file, "Host=127.0.0.1;Port=1;Username=postgres;Password=never-shown;Database=postgres;Timeout=2");
        try
        {
            var (exit, output, err) = await CliRunner.RunAsync("db", "migrate", "--provider", "postgres", "--connection-string-file", file);
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(err, Does.Contain("Unavailable"));
            Assert.That(output + err, Does.Not.Contain("never-shown"));

            Assert.That((await CliRunner.RunAsync("db", "migrate", "--provider", "mysql", "--data-dir", dir)).Exit, Is.EqualTo(2));
            Assert.That((await CliRunner.RunAsync("db", "migrate", "--provider", "postgres", "--connection-string-file", Path.Combine(dir, "missing"))).Exit, Is.EqualTo(2));
            Assert.That((await CliRunner.RunAsync("db", "migrate", "--provider", "sqlite", "--data-dir", Path.Combine(dir, "missing"))).Exit, Is.EqualTo(2));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
