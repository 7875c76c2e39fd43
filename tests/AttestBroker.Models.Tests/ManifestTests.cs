using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class Manifest_signatures_are_checked_against_the_publisher_key
{
    [Test]
    public void A_flipped_signature_byte_is_rejected_with_manifest_signature_invalid()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt();
        var der = Convert.FromBase64String(File.ReadAllText(model.SignaturePath));
        der[^1] ^= 1;
        File.WriteAllText(model.SignaturePath, Convert.ToBase64String(der));
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.ManifestSignatureInvalid));
    }

    [Test]
    public void A_manifest_changed_after_signing_is_rejected_with_manifest_signature_invalid()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt();
        var manifest = ModelManifest.Parse(File.ReadAllBytes(model.ManifestPath));
        var changed = manifest.Files.Select(f => f with { CiphertextTreeRoot = SHA256.HashData(f.CiphertextTreeRoot) }).ToList();
        model.RewriteManifest(new ModelManifest(manifest.KeyId, manifest.SegmentSize, changed), resign: false);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.ManifestSignatureInvalid));
    }

    [Test]
    public void A_signature_by_another_key_is_rejected_with_manifest_signature_invalid()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt();
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var ex = Assert.Throws<ModelException>(() => model.Decrypt(publisher: other))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.ManifestSignatureInvalid));
        model.AssertNothingAtDestination();
    }

    [Test]
    public void A_missing_signature_with_a_publisher_key_configured_is_rejected_with_manifest_signature_missing()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt(sign: false);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.ManifestSignatureMissing));
    }

    [Test]
    public void The_signature_file_is_base64_of_a_DER_ECDSA_signature_over_SHA256_of_the_manifest_bytes_as_cosign_writes()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt();
        var manifest = File.ReadAllBytes(model.ManifestPath);
        var der = Convert.FromBase64String(File.ReadAllText(model.SignaturePath));
        var pem = model.Publisher.ExportSubjectPublicKeyInfoPem();
        using var publisher = ManifestSigning.LoadPublicKeyPem(pem);
        Assert.Multiple(() =>
        {
            Assert.That(der[0], Is.EqualTo(0x30), "DER SEQUENCE");
            Assert.That(publisher.VerifyHash(SHA256.HashData(manifest), der, DSASignatureFormat.Rfc3279DerSequence), Is.True);
        });
    }
}

[TestFixture]
public sealed class Manifest_digests_bind_the_ciphertext
{
    [Test]
    public void A_changed_digest_in_a_re_signed_manifest_is_rejected_with_ciphertext_digest_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", TestModel.Segment + 10);
        model.Encrypt();
        var manifest = ModelManifest.Parse(File.ReadAllBytes(model.ManifestPath));
        var changed = manifest.Files.Select(f => f with { CiphertextTreeRoot = SHA256.HashData(f.CiphertextTreeRoot) }).ToList();
        model.RewriteManifest(new ModelManifest(manifest.KeyId, manifest.SegmentSize, changed), resign: true);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextDigestMismatch));
    }

    [Test]
    public void A_manifest_size_different_from_the_header_is_rejected_with_ciphertext_length_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 1000);
        model.Encrypt();
        var manifest = ModelManifest.Parse(File.ReadAllBytes(model.ManifestPath));
        var changed = manifest.Files.Select(f => f with { Size = f.Size - 1 }).ToList();
        model.RewriteManifest(new ModelManifest(manifest.KeyId, manifest.SegmentSize, changed), resign: true);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextLengthMismatch));
    }
}

[TestFixture]
public sealed class Manifest_paths_cannot_escape_the_destination
{
    [TestCase("../evil.bin")]
    [TestCase("a/../../evil.bin")]
    [TestCase("/etc/passwd")]
    [TestCase("a\\..\\evil.bin")]
    [TestCase("./w.bin")]
    [TestCase("a//b")]
    [TestCase("a/")]
    [TestCase("")]
    [TestCase("C:/evil")]
    [TestCase("a/\u0000b")]
    [TestCase("..")]
    public void A_path_like_this_is_rejected_with_manifest_path_invalid(string path)
    {
        var ex = Assert.Throws<ModelException>(() => ModelManifest.ValidatePath(path))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.ManifestPathInvalid));
    }

    [Test]
    public void A_signed_manifest_with_a_traversal_entry_is_rejected_with_manifest_path_invalid_and_nothing_is_written()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt();
        var json = Encoding.UTF8.GetString(File.ReadAllBytes(model.ManifestPath)).Replace("\"w.bin\"", "\"../w.bin\"", StringComparison.Ordinal);
        File.WriteAllText(model.ManifestPath, json);
        File.WriteAllText(model.SignaturePath, ManifestSigning.Sign(Encoding.UTF8.GetBytes(json), model.Publisher));
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.ManifestPathInvalid));
        Assert.That(File.Exists(Path.Combine(model.ShmDir, "w.bin")), Is.False);
    }

    [Test]
    public void A_path_listed_twice_is_rejected_with_manifest_path_invalid()
    {
        var entry = new ManifestEntry("w.bin", 1, CiphertextTreeHash.Sha256, new byte[32]);
        var ex = Assert.Throws<ModelException>(() => _ = new ModelManifest("k", TestModel.Segment, [entry, entry]))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.ManifestPathInvalid));
    }

    [Test]
    public void A_path_that_is_both_a_file_and_a_directory_is_rejected_with_manifest_path_invalid()
    {
        var ex = Assert.Throws<ModelException>(() => _ = new ModelManifest("k", TestModel.Segment, [new ManifestEntry("a", 1, CiphertextTreeHash.Sha256, new byte[32]), new ManifestEntry("a/b", 1, CiphertextTreeHash.Sha256, new byte[32])]))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.ManifestPathInvalid));
    }
}

[TestFixture]
public sealed class Malformed_manifests_are_rejected
{
    [TestCase("not json")]
    [TestCase("[]")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v2\",\"keyId\":\"k\",\"segmentSize\":1048576}")]
    [TestCase("{\"format\":\"other/v9\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[]}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v2\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[],\"extra\":1}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v2\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[{\"path\":\"a\",\"size\":-1,\"ciphertextTreeSha256\":\"00\"}]}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v2\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[{\"path\":\"a\",\"size\":1,\"ciphertextTreeSha256\":\"zz\"}]}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v3\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[{\"path\":\"a\",\"size\":1,\"ciphertextTreeBlake3\":\"ZZ\"}]}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v3\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[{\"path\":\"a\",\"size\":1}]}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v3\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[{\"path\":\"a\",\"size\":1,\"ciphertextTreeBlake3\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"ciphertextTreeSha256\":\"0000000000000000000000000000000000000000000000000000000000000000\"}]}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v2\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[{\"path\":\"a\",\"size\":1,\"ciphertextTreeBlake3\":\"0000000000000000000000000000000000000000000000000000000000000000\"}]}")]
    [TestCase("{\"format\":\"attestbroker.model-manifest/v4\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[]}")]
    public void A_manifest_like_this_is_rejected_with_manifest_malformed(string json)
    {
        var ex = Assert.Throws<ModelException>(() => ModelManifest.Parse(Encoding.UTF8.GetBytes(json)))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.ManifestMalformed));
    }

    [Test]
    public void A_SHA256_only_manifest_is_written_as_v2_for_earlier_readers_and_one_with_a_BLAKE3_tree_as_v3()
    {
        var sha = new ManifestEntry("a", 1, CiphertextTreeHash.Sha256, new byte[32]);
        var blake = new ManifestEntry("b", 2, CiphertextTreeHash.Blake3, Enumerable.Repeat((byte)7, 32).ToArray());
        var v2 = Encoding.UTF8.GetString(new ModelManifest("k", TestModel.Segment, [sha]).ToJson());
        var v3 = new ModelManifest("k", TestModel.Segment, [sha, blake]).ToJson();
        var back = ModelManifest.Parse(v3);
        Assert.Multiple(() =>
        {
            Assert.That(v2, Does.Contain(ModelManifest.FormatNameV2).And.Contain("ciphertextTreeSha256").And.Not.Contain("Blake3"));
            Assert.That(Encoding.UTF8.GetString(v3), Does.Contain(ModelManifest.FormatName).And.Contain("\"ciphertextTreeBlake3\": \"0707"));
            Assert.That(back.Files.Select(f => f.TreeHash), Is.EqualTo(new[] { CiphertextTreeHash.Sha256, CiphertextTreeHash.Blake3 }));
            Assert.That(back.Files[1].CiphertextTreeRoot, Is.EqualTo(blake.CiphertextTreeRoot));
        });
    }

    [Test]
    public void A_v1_manifest_is_rejected_with_manifest_malformed_and_told_to_re_encrypt()
    {
        var json = "{\"format\":\"attestbroker.model-manifest/v1\",\"keyId\":\"k\",\"segmentSize\":1048576,\"files\":[{\"path\":\"a\",\"size\":1,\"ciphertextSha256\":\"" + new string('0', 64) + "\"}]}";
        var ex = Assert.Throws<ModelException>(() => ModelManifest.Parse(Encoding.UTF8.GetBytes(json)))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Reason, Is.EqualTo(ModelError.ManifestMalformed));
            Assert.That(ex.Message, Does.Contain("re-encrypt"));
        });
    }

    [Test]
    public void A_segment_size_outside_1_to_4_MiB_is_rejected_with_segment_size_out_of_range()
    {
        var json = "{\"format\":\"attestbroker.model-manifest/v2\",\"keyId\":\"k\",\"segmentSize\":65536,\"files\":[]}";
        var ex = Assert.Throws<ModelException>(() => ModelManifest.Parse(Encoding.UTF8.GetBytes(json)))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SegmentSizeOutOfRange));
    }
}

[TestFixture]
public sealed class Publisher_keys_must_be_P256_PEM
{
    [Test]
    public void A_P384_public_key_is_rejected_with_publisher_key_invalid()
    {
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var ex = Assert.Throws<ModelException>(() => ManifestSigning.LoadPublicKeyPem(p384.ExportSubjectPublicKeyInfoPem()))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.PublisherKeyInvalid));
    }

    [Test]
    public void An_encrypted_private_key_is_rejected_with_publisher_key_invalid()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pem = key.ExportEncryptedPkcs8PrivateKeyPem("pw", new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000));
        var ex = Assert.Throws<ModelException>(() => ManifestSigning.LoadPrivateKeyPem(pem))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.PublisherKeyInvalid));
    }

    [Test]
    public void A_PKCS8_private_key_signs_and_its_SPKI_public_key_verifies()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var signer = ManifestSigning.LoadPrivateKeyPem(key.ExportPkcs8PrivateKeyPem());
        using var verifier = ManifestSigning.LoadPublicKeyPem(key.ExportSubjectPublicKeyInfoPem());
        var manifest = "{}"u8.ToArray();
        var signature = ManifestSigning.Sign(manifest, signer);
        Assert.DoesNotThrow(() => ManifestSigning.Verify(manifest, Encoding.ASCII.GetBytes(signature + "\n"), verifier));
    }
}
