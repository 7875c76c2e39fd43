using System.Runtime.Versioning;

namespace AttestBroker.Keys.Tests;

[TestFixture]
[Platform(Exclude = "Win", Reason = "Unix file modes")]
[UnsupportedOSPlatform("windows")]
public sealed class KekFileTests : KeysTestBase
{
    [Test]
    public void First_run_creates_an_owner_only_directory_and_a_32_byte_0600_kek_file()
    {
        using var ring = new FileKekSource(KekDirectory);
        string file = ring.PathOf(1);

        Assert.That(ring.Versions, Is.EqualTo(new[] { 1 }));
        Assert.That(new FileInfo(file).Length, Is.EqualTo(32));
        Assert.That(File.GetUnixFileMode(file), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(File.GetUnixFileMode(KekDirectory), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
    }

    [Test]
    public void A_second_start_loads_the_same_kek()
    {
        string first;
        using (var ring = new FileKekSource(KekDirectory))
        {
            first = Fingerprint(ring, 1);
        }

        using var again = new FileKekSource(KekDirectory);
        Assert.That(Fingerprint(again, 1), Is.EqualTo(first));
    }

    [Test]
    public void A_kek_file_with_mode_0644_is_refused_with_kek_file_permissions()
    {
        using (new FileKekSource(KekDirectory))
        {
        }

        string file = Path.Combine(KekDirectory, "kek-v1.bin");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        KeyStoreException e = Assert.Throws<KeyStoreException>(() => new FileKekSource(KekDirectory).Dispose())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekFilePermissions));
        Assert.That(e.Message, Does.Contain("0644").And.Contain("chmod 600"));
    }

    [Test]
    public void A_group_writable_kek_directory_is_refused_with_kek_file_permissions()
    {
        System.IO.Directory.CreateDirectory(KekDirectory);
        File.SetUnixFileMode(KekDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.GroupRead);

        KeyStoreException e = Assert.Throws<KeyStoreException>(() => new FileKekSource(KekDirectory).Dispose())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekFilePermissions));
    }

    [Test]
    public void A_kek_file_of_the_wrong_size_is_refused_with_kek_invalid()
    {
        System.IO.Directory.CreateDirectory(KekDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string file = Path.Combine(KekDirectory, "kek-v1.bin");
        File.WriteAllBytes(file, new byte[31]);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        KeyStoreException e = Assert.Throws<KeyStoreException>(() => new FileKekSource(KekDirectory).Dispose())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekInvalid));
    }

    [Test]
    public void A_kek_file_that_is_a_symlink_is_refused_with_kek_invalid()
    {
        System.IO.Directory.CreateDirectory(KekDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string target = Path.Combine(Directory, "elsewhere.bin");
        File.WriteAllBytes(target, new byte[32]);
        File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.CreateSymbolicLink(Path.Combine(KekDirectory, "kek-v1.bin"), target);

        KeyStoreException e = Assert.Throws<KeyStoreException>(() => new FileKekSource(KekDirectory).Dispose())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekInvalid));
    }

    [Test]
    public void A_kek_mounted_like_a_kubernetes_secret_volume_is_read_through_its_links()
    {
        // The kubelet's layout: kek-v1.bin -> ..data/kek-v1.bin, ..data -> ..2026_11_29_05_00_00.1, files 0400.
        System.IO.Directory.CreateDirectory(KekDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var timestamped = Path.Combine(KekDirectory, "..2026_11_29_05_00_00.1");
        System.IO.Directory.CreateDirectory(timestamped);
        var real = Path.Combine(timestamped, "kek-v1.bin");
        File.WriteAllBytes(real, Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        File.SetUnixFileMode(real, UnixFileMode.UserRead);
        System.IO.Directory.CreateSymbolicLink(Path.Combine(KekDirectory, "..data"), "..2026_11_29_05_00_00.1");
        File.CreateSymbolicLink(Path.Combine(KekDirectory, "kek-v1.bin"), "..data/kek-v1.bin");

        using var ring = new FileKekSource(KekDirectory);
        Assert.That(ring.Versions, Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public void A_link_from_inside_the_folder_to_a_file_outside_it_is_still_refused()
    {
        System.IO.Directory.CreateDirectory(KekDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var outside = Path.Combine(Directory, "outside");
        System.IO.Directory.CreateDirectory(outside);
        File.WriteAllBytes(Path.Combine(outside, "kek-v1.bin"), new byte[32]);
        File.SetUnixFileMode(Path.Combine(outside, "kek-v1.bin"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        System.IO.Directory.CreateSymbolicLink(Path.Combine(KekDirectory, "..data"), outside);
        File.CreateSymbolicLink(Path.Combine(KekDirectory, "kek-v1.bin"), "..data/kek-v1.bin");

        KeyStoreException e = Assert.Throws<KeyStoreException>(() => new FileKekSource(KekDirectory).Dispose())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekInvalid));
    }

    private static string Fingerprint(KekRing ring, int version)
    {
        string fp = string.Empty;
        ring.TryUse(version, (_, f) => fp = f);
        return fp;
    }
}
