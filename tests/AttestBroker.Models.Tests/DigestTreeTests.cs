using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class The_manifest_pins_the_root_of_the_ciphertext_digest_tree
{
    private const int S = TestModel.Segment;

    [TestCase(0)]
    [TestCase(S - 1)]
    [TestCase((3 * S) + 5)]
    public void The_root_is_SHA256_of_the_label_the_header_digest_and_each_segment_digest_in_order(int size)
    {
        using var model = new TestModel();
        model.AddFile("w.bin", size);
        var manifest = model.Encrypt();
        var bytes = File.ReadAllBytes(model.CipherPath("w.bin"));

        // Recomputed from the documented construction with nothing but byte offsets and SHA-256.
        var headerLength = 0x40 + bytes[0x3F] + 32;
        var items = new List<byte>(Encoding.ASCII.GetBytes("AttestBroker MENC v1 ciphertext tree"));
        items.AddRange(SHA256.HashData(bytes.AsSpan(0, headerLength)));
        for (var offset = headerLength; offset < bytes.Length; offset += S + 16)
        {
            items.AddRange(SHA256.HashData(bytes.AsSpan(offset, Math.Min(S + 16, bytes.Length - offset))));
        }

        var expected = SHA256.HashData(items.ToArray());
        using var handle = File.OpenHandle(model.CipherPath("w.bin"));
        Assert.Multiple(() =>
        {
            Assert.That(manifest.Files[0].CiphertextTreeSha256, Is.EqualTo(expected));
            Assert.That(CiphertextDigestTree.ComputeRoot(bytes), Is.EqualTo(expected));
            Assert.That(CiphertextDigestTree.ComputeRoot(handle), Is.EqualTo(expected));
            Assert.That(expected, Is.Not.EqualTo(SHA256.HashData(bytes)), "the root is not the whole-file SHA-256");
        });
    }

    [Test]
    public void A_manifest_that_pins_the_whole_file_SHA256_instead_of_the_root_is_rejected_with_ciphertext_digest_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (2 * S) + 1);
        var manifest = model.Encrypt();
        var whole = SHA256.HashData(File.ReadAllBytes(model.CipherPath("w.bin")));
        model.RewriteManifest(new ModelManifest(manifest.KeyId, manifest.SegmentSize, [manifest.Files[0] with { CiphertextTreeSha256 = whole }]), resign: true);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextDigestMismatch));
    }

    [Test]
    public void The_root_of_a_file_whose_length_disagrees_with_its_header_is_refused_with_ciphertext_length_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", S + 3);
        model.Encrypt();
        var bytes = File.ReadAllBytes(model.CipherPath("w.bin"));
        var ex = Assert.Throws<ModelException>(() => CiphertextDigestTree.ComputeRoot(bytes.AsSpan(0, bytes.Length - 1)))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.CiphertextLengthMismatch));
    }
}
