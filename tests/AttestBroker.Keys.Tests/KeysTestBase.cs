using AttestBroker.Storage;

namespace AttestBroker.Keys.Tests;

/// <summary>A fresh SQLite database and KEK directory per test.</summary>
public abstract class KeysTestBase
{
    private readonly List<IDisposable> _rings = [];

    protected string Directory { get; private set; } = null!;

    protected SqliteStorage Storage { get; private set; } = null!;

    protected string KekDirectory => Path.Combine(Directory, "kek");

    [SetUp]
    public async Task CreateStore()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("ab-keys-test-").FullName;
        Storage = new SqliteStorage(Path.Combine(Directory, "broker.db"));
        await Storage.MigrateAsync();
    }

    [TearDown]
    public async Task DropStore()
    {
        foreach (IDisposable r in _rings)
        {
            r.Dispose();
        }

        _rings.Clear();
        await Storage.DisposeAsync();
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    protected T Track<T>(T ring)
        where T : KekRing
    {
        _rings.Add(ring);
        return ring;
    }

    protected FileKekSource OpenKek(string? directory = null) => Track(new FileKekSource(directory ?? KekDirectory));

    protected EmbeddedKeyStore OpenStore(KekRing? ring = null) => new(Storage.Keys, ring ?? OpenKek());

    protected static byte[] Release(EmbeddedKeyStore store, string keyId)
    {
        byte[] buffer = new byte[IKeyBackend.KeyLength];
        store.GetForReleaseAsync(keyId, buffer).GetAwaiter().GetResult();
        return buffer;
    }
}
