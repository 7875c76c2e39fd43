using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace AttestBroker.Models;

/// <summary>What backs a destination directory, from statfs(2) f_type.</summary>
public enum VolumeKind
{
    /// <summary>statfs could not be called (not Linux, or it failed).</summary>
    Unknown,

    /// <summary>tmpfs (f_type 0x01021994): memory-backed.</summary>
    Tmpfs,

    /// <summary>ramfs (f_type 0x858458F6): memory-backed.</summary>
    Ramfs,

    /// <summary>Anything else: assumed disk-backed.</summary>
    Other,
}

/// <summary>The destination of decrypted plaintext must be memory-backed unless the operator explicitly allows disk.</summary>
public static partial class MemoryVolume
{
    public const long TmpfsMagic = 0x01021994;
    public const long RamfsMagic = 0x858458F6;

    /// <summary>statfs f_type of the nearest existing ancestor of <paramref name="path"/>, and the raw magic.</summary>
    public static (VolumeKind Kind, long Magic) Probe(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            return (VolumeKind.Unknown, 0);
        }

        var dir = new DirectoryInfo(Path.GetFullPath(path));
        while (dir is not null && !dir.Exists)
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            return (VolumeKind.Unknown, 0);
        }

        // struct statfs on 64-bit Linux is 120 bytes and starts with the 8-byte f_type; leave room to spare.
        Span<byte> buffer = stackalloc byte[256];
        int rc;
        unsafe
        {
            fixed (byte* p = buffer)
            {
                rc = StatFs(dir.FullName, p);
            }
        }

        if (rc != 0)
        {
            return (VolumeKind.Unknown, 0);
        }

        var magic = BinaryPrimitives.ReadInt64LittleEndian(buffer) & 0xFFFFFFFFL;
        if (!BitConverter.IsLittleEndian)
        {
            magic = BinaryPrimitives.ReadInt64BigEndian(buffer) & 0xFFFFFFFFL;
        }

        var kind = magic switch
        {
            TmpfsMagic => VolumeKind.Tmpfs,
            RamfsMagic => VolumeKind.Ramfs,
            _ => VolumeKind.Other,
        };
        return (kind, magic);
    }

    /// <summary>Bytes available to us on the volume of the nearest existing ancestor of <paramref name="path"/>; -1 when unknown (ramfs reports 0 and is treated as unknown).</summary>
    public static long AvailableBytes(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var dir = new DirectoryInfo(Path.GetFullPath(path));
        while (dir is not null && !dir.Exists)
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            return -1;
        }

        try
        {
            var drive = new DriveInfo(dir.FullName);
            return drive.TotalSize == 0 ? -1 : drive.AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>True for tmpfs and ramfs.</summary>
    public static bool IsMemoryBacked(string path) => Probe(path).Kind is VolumeKind.Tmpfs or VolumeKind.Ramfs;

    /// <summary>Throws <see cref="ModelError.DestinationNotMemoryBacked"/> unless the destination is tmpfs/ramfs or disk is allowed.</summary>
    public static void Require(string destination, bool allowDisk)
    {
        if (allowDisk)
        {
            return;
        }

        var (kind, magic) = Probe(destination);
        if (kind is not (VolumeKind.Tmpfs or VolumeKind.Ramfs))
        {
            var what = kind == VolumeKind.Unknown ? "could not be determined (statfs unavailable)" : $"is not tmpfs or ramfs (f_type 0x{magic:x8})";
            throw new ModelException(ModelError.DestinationNotMemoryBacked, $"destination {destination} {what}: decrypted weights would reach disk. Use a memory-backed volume (emptyDir medium: Memory, /dev/shm) or pass --allow-disk");
        }
    }

    [LibraryImport("libc", EntryPoint = "statfs", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int StatFs(string path, byte* buffer);
}
