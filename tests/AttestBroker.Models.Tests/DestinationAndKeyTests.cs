using System.Text;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class Destinations_must_be_memory_backed
{
    [Test]
    public void Dev_shm_is_recognised_as_tmpfs()
    {
        if (!Directory.Exists("/dev/shm"))
        {
            Assert.Ignore("/dev/shm does not exist on this machine");
        }

        var (kind, magic) = MemoryVolume.Probe("/dev/shm/does/not/exist/yet");
        if (kind != VolumeKind.Tmpfs)
        {
            Assert.Ignore($"/dev/shm is not tmpfs here (f_type 0x{magic:x})");
        }

        Assert.That(magic, Is.EqualTo(MemoryVolume.TmpfsMagic));
    }

    [Test]
    public void A_disk_backed_destination_is_refused_with_destination_not_memory_backed_unless_disk_is_allowed()
    {
        using var model = new TestModel();
        var diskDestination = Path.Combine(model.Root, "out");
        if (MemoryVolume.Probe(model.Root).Kind is VolumeKind.Tmpfs or VolumeKind.Ramfs)
        {
            Assert.Ignore($"{Path.GetTempPath()} is memory-backed here: no disk-backed directory to test with");
        }

        var data = model.AddFile("w.bin", 100);
        model.Encrypt();
        var ex = Assert.Throws<ModelException>(() => model.Decrypt(destination: diskDestination))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Reason, Is.EqualTo(ModelError.DestinationNotMemoryBacked));
            Assert.That(ex.Message, Does.Contain("--allow-disk"));
            Assert.That(Directory.Exists(diskDestination), Is.False);
        });

        model.Decrypt(destination: diskDestination, allowDisk: true);
        Assert.That(File.ReadAllBytes(Path.Combine(diskDestination, "w.bin")), Is.EqualTo(data));
    }
}

[TestFixture]
public sealed class Key_files_hold_32_bytes_raw_or_base64
{
    [Test]
    public void Raw_32_bytes_base64_and_base64_with_a_newline_give_the_same_key()
    {
        var key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var b64 = Encoding.ASCII.GetBytes(Convert.ToBase64String(key));
        var b64nl = Encoding.ASCII.GetBytes(Convert.ToBase64String(key) + "\n");
        foreach (var content in new[] { key, b64, b64nl })
        {
            using var k = ModelKey.FromKeyFileContent(content);
            Assert.That(k.Span.ToArray(), Is.EqualTo(key));
        }
    }

    [TestCase(31)]
    [TestCase(33)]
    [TestCase(0)]
    public void A_key_file_of_the_wrong_length_is_rejected_with_model_key_invalid(int length)
    {
        var ex = Assert.Throws<ModelException>(() => ModelKey.FromKeyFileContent(new byte[length]))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.ModelKeyInvalid));
    }

    [Test]
    public void Base64_of_the_wrong_length_is_rejected_without_echoing_the_content()
    {
        var secret = Convert.ToBase64String(new byte[24]);
        var ex = Assert.Throws<ModelException>(() => ModelKey.FromKeyFileContent(Encoding.ASCII.GetBytes(secret)))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Reason, Is.EqualTo(ModelError.ModelKeyInvalid));
            Assert.That(ex.Message, Does.Not.Contain(secret));
        });
    }

    [Test]
    public void A_disposed_key_is_zeroed_and_unusable()
    {
        var key = ModelKey.FromBytes(Enumerable.Repeat((byte)0xAB, 32).ToArray());
        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => _ = key.Span.Length);
    }
}
