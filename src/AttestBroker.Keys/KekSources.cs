using System.Globalization;
using System.Security.Cryptography;

namespace AttestBroker.Keys;

/// <summary>
/// KEKs in a directory: one 32-byte file per version, <c>kek-v{N}.bin</c>, mode 0600, in a directory that only
/// its owner may write. The first run creates the directory (0700) and version 1. A file readable or writable by
/// group or others, a symlink, or a file of the wrong size is refused with a typed error.
/// </summary>
public sealed class FileKekSource : KekRing
{
    private const string Prefix = "kek-v";
    private const string Suffix = ".bin";
    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private readonly string _directory;

    public FileKekSource(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        _directory = Path.GetFullPath(directory);
        try
        {
            if (!Directory.Exists(_directory))
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(_directory);
                }
                else
                {
                    Directory.CreateDirectory(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }
            }
            else if (!OperatingSystem.IsWindows())
            {
                UnixFileMode mode = File.GetUnixFileMode(_directory);
                if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
                {
                    throw new KeyStoreException(KeyError.KekFilePermissions,
                        $"the KEK directory {_directory} is writable by group or others (mode {Octal(mode)}); run: chmod 700 {_directory}");
                }
            }

            List<int> versions = ListVersions(_directory);

            if (versions.Count == 0)
            {
                try
                {
                    AddVersion();
                }
                catch (KeyStoreException) when (File.Exists(PathOf(1)))
                {
                    // Another replica created version 1 at the same moment: use it.
                    Load(1, ReadKekFile(PathOf(1)));
                }
            }
            else
            {
                foreach (int v in versions.Order())
                {
                    Load(v, ReadKekFile(PathOf(v)));
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Dispose();
            throw new KeyStoreException(KeyError.KekUnavailable, $"cannot read the KEK directory {_directory}: {e.GetType().Name}", e);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override bool CanAddVersion => true;

    public override string Origin => "directory " + _directory;

    public string DirectoryPath => _directory;

    public string PathOf(int version) => Path.Combine(_directory, Prefix + version.ToString(CultureInfo.InvariantCulture) + Suffix);

    private protected override void Persist(int version, ReadOnlySpan<byte> kek)
    {
        string path = PathOf(version);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using var fs = new FileStream(path, options);
            fs.Write(kek);
            fs.Flush(flushToDisk: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException(KeyError.KekUnavailable, $"cannot create the KEK file {path}: {e.GetType().Name}", e);
        }
    }

    private protected override byte[]? LoadMissing(int version)
    {
        string path = PathOf(version);
        try
        {
            return File.Exists(path) ? ReadKekFile(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException(KeyError.KekUnavailable, $"cannot read the KEK file {path}: {e.GetType().Name}", e);
        }
    }

    private protected override IEnumerable<int> NewerVersions(int current)
    {
        try
        {
            return [.. ListVersions(_directory).Where(v => v > current)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException(KeyError.KekUnavailable, $"cannot read the KEK directory {_directory}: {e.GetType().Name}", e);
        }
    }

    private static List<int> ListVersions(string directory)
    {
        var versions = new List<int>();
        foreach (string path in Directory.EnumerateFiles(directory, Prefix + "*" + Suffix))
        {
            string name = Path.GetFileName(path);
            string number = name[Prefix.Length..^Suffix.Length];
            if (int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 && number == v.ToString(CultureInfo.InvariantCulture))
            {
                versions.Add(v);
            }
        }

        return versions;
    }

    private protected override void Forget(int version)
    {
        string path = PathOf(version);
        try
        {
            // Best effort: overwrite before unlinking (no guarantee on copy-on-write or flash storage).
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None))
            {
                fs.Write(new byte[KekLength]);
                fs.Flush(flushToDisk: true);
            }

            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyStoreException(KeyError.KekUnavailable, $"cannot remove the retired KEK file {path}: {e.GetType().Name}", e);
        }
    }

    private static byte[] ReadKekFile(string linkOrFile)
    {
        var path = SecretFileLinks.ResolveContained(linkOrFile)
            ?? throw new KeyStoreException(KeyError.KekInvalid, $"the KEK file {linkOrFile} is a symbolic link out of its folder; it must be a regular file (or a Kubernetes Secret volume's link)");
        var info = new FileInfo(path);

        if (!OperatingSystem.IsWindows())
        {
            UnixFileMode mode = File.GetUnixFileMode(path);
            if ((mode & GroupOrOther) != 0)
            {
                throw new KeyStoreException(KeyError.KekFilePermissions,
                    $"the KEK file {path} has mode {Octal(mode)}; it must be readable by its owner only: run chmod 600 {path}");
            }
        }

        if (info.Length != KekLength)
        {
            throw new KeyStoreException(KeyError.KekInvalid, $"the KEK file {path} is {info.Length} bytes; it must be exactly {KekLength}");
        }

        byte[] kek = GC.AllocateArray<byte>(KekLength, pinned: true);
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            fs.ReadExactly(kek);
            if (fs.ReadByte() != -1)
            {
                throw new KeyStoreException(KeyError.KekInvalid, $"the KEK file {path} grew while being read");
            }

            return kek;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(kek);
            throw;
        }
    }

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0x1FF, 8);
}

/// <summary>
/// KEKs from an environment value: either the base64 of 32 bytes (version 1), or comma-separated
/// <c>version:base64</c> pairs, e.g. <c>1:AAAA...,2:BBBB...</c>. Cannot add versions itself: to rotate, add the new
/// version to the variable, restart, rotate, then remove the old one.
/// </summary>
public sealed class EnvironmentKekSource : KekRing
{
    public const string DefaultVariable = "ATTESTBROKER_KEK";

    private readonly string _origin;

    /// <summary>Reads the KEK from the environment variable <paramref name="variable"/>.</summary>
    public EnvironmentKekSource(string variable = DefaultVariable)
        : this(Environment.GetEnvironmentVariable(variable), "environment variable " + variable)
    {
    }

    /// <summary>Parses a KEK value given directly (for configuration systems that resolve the value).</summary>
    public EnvironmentKekSource(string? value, string origin)
    {
        _origin = origin;
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new KeyStoreException(KeyError.KekUnavailable, $"no KEK is set in the {origin}");
        }

        try
        {
            string[] parts = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            foreach (string part in parts)
            {
                int colon = part.IndexOf(':', StringComparison.Ordinal);
                int version;
                string b64;
                if (colon < 0)
                {
                    if (parts.Length != 1)
                    {
                        throw new KeyStoreException(KeyError.KekInvalid, $"the KEK value in the {origin} lists several keys; give each as version:base64");
                    }

                    version = 1;
                    b64 = part;
                }
                else if (!int.TryParse(part.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out version) || version <= 0)
                {
                    throw new KeyStoreException(KeyError.KekInvalid, $"the KEK value in the {origin} has an entry whose version is not a positive integer");
                }
                else
                {
                    b64 = part[(colon + 1)..];
                }

                if (Versions.Contains(version))
                {
                    throw new KeyStoreException(KeyError.KekInvalid, $"the KEK value in the {origin} gives version {version} twice");
                }

                byte[] buffer = GC.AllocateArray<byte>(64, pinned: true);
                try
                {
                    if (!Convert.TryFromBase64String(b64, buffer, out int written) || written != KekLength)
                    {
                        throw new KeyStoreException(KeyError.KekInvalid, $"KEK version {version} in the {origin} is not the base64 of exactly {KekLength} bytes");
                    }

                    byte[] kek = GC.AllocateArray<byte>(KekLength, pinned: true);
                    buffer.AsSpan(0, KekLength).CopyTo(kek);
                    Load(version, kek);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(buffer);
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override bool CanAddVersion => false;

    public override string Origin => _origin;

    private protected override void Persist(int version, ReadOnlySpan<byte> kek) =>
        throw new KeyStoreException(KeyError.RotationUnsupported, $"the KEK comes from the {_origin}; new versions are added there");

    private protected override void Forget(int version)
    {
        // Nothing persisted here: the operator removes the old version from the environment.
    }
}
