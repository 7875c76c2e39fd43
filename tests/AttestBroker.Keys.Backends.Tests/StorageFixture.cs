using AttestBroker.Storage;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>A fresh SQLite broker database per test, for the backends that keep their ciphertext in key records.</summary>
public abstract class StorageFixture
{
    protected string Directory { get; private set; } = null!;

    internal SqliteStorage Storage { get; private set; } = null!;

    [SetUp]
    public async Task CreateStorage()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("ab-backends-test-").FullName;
        Storage = new SqliteStorage(Path.Combine(Directory, "broker.db"));
        await Storage.MigrateAsync();
    }

    [TearDown]
    public async Task DropStorage()
    {
        await Storage.DisposeAsync();
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    protected static async Task<byte[]> ReleaseAsync(IKeyBackend backend, string keyId)
    {
        byte[] buffer = new byte[IKeyBackend.KeyLength];
        await backend.GetForReleaseAsync(keyId, buffer);
        return buffer;
    }
}
