using System.Runtime.InteropServices;

namespace AttestBroker.Agent.Providers;

/// <summary>The few libc calls the guest interfaces need (Linux).</summary>
internal static partial class Libc
{
    public const int O_RDWR = 2;
    public const int O_CLOEXEC = 0x80000;

    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int ENOTDIR = 20;
    public const int EINVAL = 22;
    public const int ENOTTY = 25;
    public const int EFBIG = 27;
    public const int ENOSPC = 28;
    public const int ENOTEMPTY = 39;
    public const int EOPNOTSUPP = 95;
    public const int ETIMEDOUT = 110;

    [LibraryImport("libc", EntryPoint = "mkdir", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Mkdir(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "rmdir", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Rmdir(string path);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    /// <summary>The errno name for messages.</summary>
    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EINVAL => "EINVAL",
        ENOTTY => "ENOTTY",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        ENOTEMPTY => "ENOTEMPTY",
        EOPNOTSUPP => "EOPNOTSUPP",
        ETIMEDOUT => "ETIMEDOUT",
        _ => "errno " + errno.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>How a failed call's errno is reported.</summary>
    public static EvidenceProviderError Classify(int errno) => errno switch
    {
        ENOENT or ENODEV or ENXIO or ENOTDIR or ENOTTY or EOPNOTSUPP => EvidenceProviderError.NotAvailable,
        EACCES or EPERM => EvidenceProviderError.PermissionDenied,
        EBUSY or EAGAIN or EINTR or EIO or ETIMEDOUT or ENOMEM or ENOSPC => EvidenceProviderError.Busy,
        _ => EvidenceProviderError.InvalidResponse,
    };

    /// <summary>What to tell the operator about an errno from a guest interface.</summary>
    public static string Hint(int errno) => errno switch
    {
        EACCES or EPERM => "permission denied: the agent needs root (or CAP_SYS_ADMIN and access to the interface) inside the TEE",
        ENOENT or ENODEV or ENXIO => "not present: this is not a TDX/SEV-SNP guest, or the kernel lacks the driver, or it is not mounted into this container",
        EBUSY or EAGAIN => "busy: another request is in progress or the host's quoting service is not ready; retry",
        EIO => "I/O error: the host's quoting service (TDX QGS) or the firmware failed; retry, then check the host",
        EFBIG => "the evidence is larger than the kernel's buffer",
        ENOTTY or EINVAL or EOPNOTSUPP => "the driver does not know this request (an older or newer kernel ABI)",
        _ => Name(errno),
    };
}
