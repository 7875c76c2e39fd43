using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class The_manifest_pins_the_root_of_the_ciphertext_digest_tree
{
    private const int S = TestModel.Segment;

    [TestCase(0, CiphertextTreeHash.Sha256)]
    [TestCase(S - 1, CiphertextTreeHash.Sha256)]
    [TestCase((3 * S) + 5, CiphertextTreeHash.Sha256)]
    [TestCase(0, CiphertextTreeHash.Blake3)]
    [TestCase(S - 1, CiphertextTreeHash.Blake3)]
    [TestCase((3 * S) + 5, CiphertextTreeHash.Blake3)]
    public void The_root_is_the_hash_of_the_label_the_header_digest_and_each_segment_digest_in_order(int size, CiphertextTreeHash hash)
    {
        using var model = new TestModel();
        model.AddFile("w.bin", size);
        var manifest = model.Encrypt(treeHash: hash);
        var bytes = File.ReadAllBytes(model.CipherPath("w.bin"));

        // Recomputed from the documented construction with nothing but byte offsets and the hash (BLAKE3 from the
        // independent package, so that this test does not lean on Blake3Hash).
        Func<byte[], byte[]> h = hash == CiphertextTreeHash.Sha256 ? SHA256.HashData : b => global::Blake3.Hasher.Hash(b).AsSpan().ToArray();
        var headerLength = 0x40 + bytes[0x3F] + 32;
        var items = new List<byte>(Encoding.ASCII.GetBytes("AttestBroker MENC v1 ciphertext tree"));
        items.AddRange(h(bytes[..headerLength]));
        for (var offset = headerLength; offset < bytes.Length; offset += S + 16)
        {
            items.AddRange(h(bytes[offset..Math.Min(offset + S + 16, bytes.Length)]));
        }

        var expected = h(items.ToArray());
        using var handle = File.OpenHandle(model.CipherPath("w.bin"));
        Assert.Multiple(() =>
        {
            Assert.That(manifest.Files[0].TreeHash, Is.EqualTo(hash));
            Assert.That(manifest.Files[0].CiphertextTreeRoot, Is.EqualTo(expected));
            Assert.That(CiphertextDigestTree.ComputeRoot(bytes, hash), Is.EqualTo(expected));
            Assert.That(CiphertextDigestTree.ComputeRoot(handle, hash), Is.EqualTo(expected));
            Assert.That(expected, Is.Not.EqualTo(h(bytes)), "the root is not the whole-file hash");
        });
        Assert.That(model.Decrypt().Files, Is.EqualTo(1));
    }

    /// <summary>The worked example of docs/model-format.md: its roots, as sha256sum and b3sum give them there.</summary>
    [TestCase(CiphertextTreeHash.Sha256, "ae47bb5482cfb674ee9505403699b2e0965c206fe6f452b98eaa1420660b7b0e")]
    [TestCase(CiphertextTreeHash.Blake3, "48de3068b465396be1dc56981a781d823eb018aa2228a456dcbe048026025aa4")]
    public void The_documented_example_file_has_the_documented_roots(CiphertextTreeHash hash, string root)
    {
        var file = Convert.FromHexString(
            "4d454e43010100006200000000001000030000000000000044b5a4db56c687bdf7835846b88687016dcb4d58586e2a6ae60d95a339611901"
            + "02945b849b3ca202657801018dd7e7ca22e899b82dc9c4a651a28e8d3a3eb6e661d8ca6b82c891da82c6986c04521e1965c734595a72dcab"
            + "1cc77ebec0");

        Assert.That(Convert.ToHexStringLower(CiphertextDigestTree.ComputeRoot(file, hash)), Is.EqualTo(root));
    }

    [Test]
    public void A_BLAKE3_root_relabelled_as_SHA256_in_a_re_signed_manifest_is_rejected_with_ciphertext_digest_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (2 * S) + 1);
        var manifest = model.Encrypt();
        Assert.That(manifest.Files[0].TreeHash, Is.EqualTo(CiphertextTreeHash.Blake3), "encrypt's default");
        model.RewriteManifest(new ModelManifest(manifest.KeyId, manifest.SegmentSize, [manifest.Files[0] with { TreeHash = CiphertextTreeHash.Sha256 }]), resign: true);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextDigestMismatch));
    }

    [Test]
    public void A_manifest_that_pins_the_whole_file_SHA256_instead_of_the_root_is_rejected_with_ciphertext_digest_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (2 * S) + 1);
        var manifest = model.Encrypt(treeHash: CiphertextTreeHash.Sha256);
        var whole = SHA256.HashData(File.ReadAllBytes(model.CipherPath("w.bin")));
        model.RewriteManifest(new ModelManifest(manifest.KeyId, manifest.SegmentSize, [manifest.Files[0] with { CiphertextTreeRoot = whole }]), resign: true);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextDigestMismatch));
    }

    [Test]
    public void The_root_of_a_file_whose_length_disagrees_with_its_header_is_refused_with_ciphertext_length_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", S + 3);
        model.Encrypt();
        var bytes = File.ReadAllBytes(model.CipherPath("w.bin"));
        var ex = Assert.Throws<ModelException>(() => CiphertextDigestTree.ComputeRoot(bytes.AsSpan(0, bytes.Length - 1), CiphertextTreeHash.Blake3))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.CiphertextLengthMismatch));
    }
}
