using System.Security.Cryptography;
using System.Text;

namespace AttestBroker.Keys;

/// <summary>
/// Versioned key-encryption keys held in memory (pinned, zeroed on retire and dispose). Filled from a KEK
/// directory (<see cref="FileKekSource"/>) or an environment value (<see cref="EnvironmentKekSource"/>).
/// </summary>
public abstract class KekRing : IDisposable
{
    public const int KekLength = 32;

    private readonly SortedDictionary<int, byte[]> _keks = [];
    private readonly object _gate = new();
    private bool _disposed;

    /// <summary>Whether this ring can create and persist a new version itself.</summary>
    public abstract bool CanAddVersion { get; }

    /// <summary>Where the KEK comes from, for messages ("file /var/lib/...", "environment ATTESTBROKER_KEK").</summary>
    public abstract string Origin { get; }

    public int CurrentVersion
    {
        get
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return _keks.Count == 0 ? 0 : _keks.Keys.Max();
            }
        }
    }

    public IReadOnlyList<int> Versions
    {
        get
        {
            lock (_gate)
            {
                return [.. _keks.Keys];
            }
        }
    }

    /// <summary>Public identity of a KEK: hex of SHA-256("attestbroker-kek-id" 0 kek), first 16 bytes.</summary>
    public static string Fingerprint(ReadOnlySpan<byte> kek)
    {
        Span<byte> digest = stackalloc byte[32];
        using (var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            h.AppendData("attestbroker-kek-id\0"u8);
            h.AppendData(kek);
            h.GetHashAndReset(digest);
        }

        return Convert.ToHexStringLower(digest[..16]);
    }

    /// <summary>Runs <paramref name="use"/> with the KEK of <paramref name="version"/>; false when that version is absent.</summary>
    internal bool TryUse(int version, Action<ReadOnlySpan<byte>, string> use)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_keks.TryGetValue(version, out byte[]? kek))
            {
                // Another replica sharing the KEK source may have added the version since start.
                byte[]? loaded = LoadMissing(version);
                if (loaded is null)
                {
                    return false;
                }

                _keks[version] = loaded;
                kek = loaded;
            }

            use(kek, Fingerprint(kek));
            return true;
        }
    }

    internal int AddVersion()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!CanAddVersion)
            {
                throw new KeyStoreException(KeyError.RotationUnsupported,
                    $"the KEK comes from the {Origin}, which cannot be extended here: add a new version there and restart, then rotate");
            }

            int newest = _keks.Count == 0 ? 0 : _keks.Keys.Max();
            int next = Math.Max(newest, NewerVersions(newest).DefaultIfEmpty(0).Max()) + 1;
            byte[] kek = GC.AllocateArray<byte>(KekLength, pinned: true);
            RandomNumberGenerator.Fill(kek);
            try
            {
                Persist(next, kek);
            }
            catch
            {
                CryptographicOperations.ZeroMemory(kek);
                throw;
            }

            _keks[next] = kek;
            return next;
        }
    }

    internal void Retire(int version)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_keks.Count > 0 && version == _keks.Keys.Max())
            {
                throw new InvalidOperationException("the current KEK version cannot be retired");
            }

            if (_keks.Remove(version, out byte[]? kek))
            {
                CryptographicOperations.ZeroMemory(kek);
                Forget(version);
            }
        }
    }

    /// <summary>Adds a loaded KEK version; takes ownership of <paramref name="kek"/> (a pinned array).</summary>
    private protected void Load(int version, byte[] kek)
    {
        if (kek.Length != KekLength)
        {
            CryptographicOperations.ZeroMemory(kek);
            throw new KeyStoreException(KeyError.KekInvalid, $"KEK version {version} from the {Origin} is {kek.Length} bytes; it must be exactly {KekLength}");
        }

        lock (_gate)
        {
            if (_keks.Remove(version, out byte[]? old))
            {
                CryptographicOperations.ZeroMemory(old);
            }

            _keks[version] = kek;
        }
    }

    private protected abstract void Persist(int version, ReadOnlySpan<byte> kek);

    /// <summary>Loads a version created elsewhere (a pinned 32-byte array), or null when there is none.</summary>
    private protected virtual byte[]? LoadMissing(int version) => null;

    /// <summary>Versions above the current one that exist in the source but are not loaded yet.</summary>
    private protected virtual IEnumerable<int> NewerVersions(int current) => [];

    /// <summary>Loads versions added elsewhere since start, so new keys are wrapped under the newest KEK.</summary>
    internal void Refresh()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int current = _keks.Count == 0 ? 0 : _keks.Keys.Max();
            foreach (int v in NewerVersions(current))
            {
                if (!_keks.ContainsKey(v) && LoadMissing(v) is { } kek)
                {
                    _keks[v] = kek;
                }
            }
        }
    }

    private protected abstract void Forget(int version);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            foreach (byte[] kek in _keks.Values)
            {
                CryptographicOperations.ZeroMemory(kek);
            }

            _keks.Clear();
            _disposed = true;
        }
    }

    public override string ToString()
    {
        var sb = new StringBuilder("KekRing { Origin = ").Append(Origin).Append(", Versions = [");
        sb.AppendJoin(", ", Versions).Append("] }");
        return sb.ToString();
    }
}
