using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Demo;

/// <summary>Runs <c>attestbroker demo --keep</c> once for the fixtures in this namespace; each test tampers with its own copy of the data directory.</summary>
[SetUpFixture]
public sealed class DemoRunOnce
{
    internal static string Root { get; private set; } = null!;

    internal static (int Exit, string Out, string Err) Result { get; private set; }

    internal static string KeptDataDir => Path.Combine(Root, "kept", "data");

    [OneTimeSetUp]
    public async Task RunDemoAsync()
    {
        Root = Directory.CreateTempSubdirectory("ab-cli-demo-").FullName;
        Result = await CliRunner.RunAsync("demo", "--keep", Path.Combine(Root, "kept"));
        SqliteConnection.ClearAllPools();
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(Root, recursive: true);
    }

    /// <summary>A private copy of the demo's data directory.</summary>
    internal static string CopyDataDir()
    {
        Assert.That(Result.Exit, Is.Zero, "the demo must pass before its data directory can be used: " + Result.Err);
        var target = Path.Combine(Root, "copy-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(KeptDataDir, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(target, Path.GetRelativePath(KeptDataDir, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }

        return target;
    }

    /// <summary>Runs one SQL statement against a data directory's database, as an attacker with file access would.</summary>
    internal static async Task TamperAsync(string dataDir, string sql)
    {
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(dataDir, "attestbroker.db")};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            Assert.That(await command.ExecuteNonQueryAsync(), Is.GreaterThan(0), "the tampering statement changed nothing: " + sql);
        }
    }
}
