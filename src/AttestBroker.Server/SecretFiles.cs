using System.Security.Cryptography;

namespace AttestBroker.Server;

/// <summary>
/// Small secret files in the data directory (nonce MAC key, token-signing key): created once with mode 0600, refused
/// when group or others may read or write them, or when they are symlinks other than a Kubernetes Secret volume's
/// links into its own folder (<see cref="AttestBroker.Keys.SecretFileLinks"/>). Contents never reach a message.
/// </summary>
internal static class SecretFiles
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Reads the file, creating it from <paramref name="create"/> first when it does not exist. The caller zeroes the result.</summary>
    public static byte[] ReadOrCreate(string path, int maxLength, Func<byte[]> create)
    {
        if (!File.Exists(path))
        {
            var fresh = create();
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = OwnerOnly;
                }

                using var stream = new FileStream(path, options);
                stream.Write(fresh);
                stream.Flush(flushToDisk: true);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another replica or process created it first: use theirs.
            }
            finally
            {
                CryptographicOperations.ZeroMemory(fresh);
            }
        }

        var resolved = AttestBroker.Keys.SecretFileLinks.ResolveContained(path)
            ?? throw new BrokerStartupException($"{path} is a symbolic link out of its folder; secret files must be regular files (or a Kubernetes Secret volume's links)");
        var info = new FileInfo(resolved);

        if (!OperatingSystem.IsWindows() && (info.UnixFileMode & GroupOrOther) != 0)
        {
            throw new BrokerStartupException($"{path} is accessible by group or others; it must be mode 0600");
        }

        if (info.Length > maxLength)
        {
            throw new BrokerStartupException($"{path} is larger than {maxLength} bytes");
        }

        return File.ReadAllBytes(resolved);
    }
}

/// <summary>The broker cannot start: a setting, file or backend is wrong. The message names it and never carries secrets.</summary>
public sealed class BrokerStartupException : Exception
{
    public BrokerStartupException(string message)
        : base(message)
    {
    }

    public BrokerStartupException()
    {
    }

    public BrokerStartupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
