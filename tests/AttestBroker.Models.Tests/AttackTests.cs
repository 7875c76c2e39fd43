using NUnit.Framework;

namespace AttestBroker.Models.Tests;

/// <summary>Helpers to edit a ciphertext file at segment granularity.</summary>
internal static class Tamper
{
    public static int HeaderLength => ModelFileHeader.HeaderLengthFor(TestModel.KeyId);

    public static long SegmentOffset(long i) => HeaderLength + (i * (TestModel.Segment + 16L));

    public static byte[] ReadSegment(string path, long i)
    {
        var bytes = File.ReadAllBytes(path);
        return bytes.AsSpan((int)SegmentOffset(i), TestModel.Segment + 16).ToArray();
    }

    public static void WriteSegment(string path, long i, byte[] segment)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
        stream.Position = SegmentOffset(i);
        stream.Write(segment);
    }

    public static void Truncate(string path, long length)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
        stream.SetLength(length);
    }

    public static void FlipBit(string path, long offset, int bit = 0)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[offset] ^= (byte)(1 << bit);
        File.WriteAllBytes(path, bytes);
    }
}

[TestFixture]
public sealed class Truncated_ciphertext_is_rejected
{
    [Test]
    public void Dropping_the_last_segment_is_rejected_with_ciphertext_length_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 3 * TestModel.Segment);
        model.Encrypt();
        Tamper.Truncate(model.CipherPath("w.bin"), Tamper.SegmentOffset(2));
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextLengthMismatch));
    }

    [Test]
    public void Cutting_the_file_mid_segment_is_rejected_with_ciphertext_length_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 3 * TestModel.Segment);
        model.Encrypt();
        Tamper.Truncate(model.CipherPath("w.bin"), Tamper.SegmentOffset(1) + 1000);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextLengthMismatch));
    }

    [Test]
    public void Appending_bytes_after_the_last_segment_is_rejected_with_ciphertext_length_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 100);
        model.Encrypt();
        using (var s = new FileStream(model.CipherPath("w.bin"), FileMode.Append))
        {
            s.Write(new byte[16]);
        }

        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.CiphertextLengthMismatch));
    }

    [Test]
    public void A_segment_that_was_not_last_fails_authentication_when_decrypted_as_the_last()
    {
        // What a reader of a stream truncated at a segment boundary would do without the length check: the last-segment flag stops it.
        using var key = ModelKey.Generate();
        using var cipher = new MemoryStream();
        var s = TestModel.Segment;
        ModelFileEncryptor.EncryptAsync(new MemoryStream(new byte[2 * s]), 2 * s, cipher, key, "k", s).GetAwaiter().GetResult();
        var bytes = cipher.ToArray();
        using var file = EncryptedModelFile.Open(bytes, key, "k");
        var segmentKey = new byte[32];
        var macKey = new byte[32];
        EncryptedModelFile.DeriveKeys(key.Span, file.Header.Salt.Span, segmentKey, macKey);
        using var truncatedView = new SegmentCipher(segmentKey, file.Header.Tag.Span, file.Header.NoncePrefix.Span, segmentCount: 1, s, plaintextLength: s);
        var segment0 = bytes.AsSpan((int)file.SegmentOffset(0), file.SegmentCiphertextLength(0)).ToArray();
        var ex = Assert.Throws<ModelException>(() => truncatedView.Decrypt(0, segment0, new byte[s]))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SegmentAuthenticationFailed));
    }
}

[TestFixture]
public sealed class Reordered_duplicated_and_spliced_segments_are_rejected
{
    [Test]
    public void Swapping_two_segments_is_rejected_with_segment_authentication_failed()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 3 * TestModel.Segment);
        model.Encrypt();
        var path = model.CipherPath("w.bin");
        var s0 = Tamper.ReadSegment(path, 0);
        var s1 = Tamper.ReadSegment(path, 1);
        Tamper.WriteSegment(path, 0, s1);
        Tamper.WriteSegment(path, 1, s0);
        Assert.That(model.DecryptFails(checkSignature: false).Reason, Is.EqualTo(ModelError.SegmentAuthenticationFailed));
    }

    [Test]
    public void Duplicating_a_segment_over_the_next_is_rejected_with_segment_authentication_failed()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 3 * TestModel.Segment);
        model.Encrypt();
        var path = model.CipherPath("w.bin");
        Tamper.WriteSegment(path, 1, Tamper.ReadSegment(path, 0));
        Assert.That(model.DecryptFails(checkSignature: false).Reason, Is.EqualTo(ModelError.SegmentAuthenticationFailed));
    }

    [Test]
    public void A_segment_swapped_in_from_another_file_under_the_same_key_is_rejected_with_segment_authentication_failed()
    {
        using var model = new TestModel();
        model.AddFile("a.bin", 3 * TestModel.Segment, seed: 1);
        model.AddFile("b.bin", 3 * TestModel.Segment, seed: 2);
        model.Encrypt();
        Tamper.WriteSegment(model.CipherPath("a.bin"), 1, Tamper.ReadSegment(model.CipherPath("b.bin"), 1));
        Assert.That(model.DecryptFails(checkSignature: false).Reason, Is.EqualTo(ModelError.SegmentAuthenticationFailed));
    }

    [Test]
    public void A_whole_file_replaced_by_another_of_the_same_size_and_key_is_rejected_with_ciphertext_digest_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("a.bin", 2 * TestModel.Segment, seed: 1);
        model.AddFile("b.bin", 2 * TestModel.Segment, seed: 2);
        model.Encrypt();
        File.Copy(model.CipherPath("b.bin"), model.CipherPath("a.bin"), overwrite: true);
        Assert.That(model.DecryptFails(checkSignature: false).Reason, Is.EqualTo(ModelError.CiphertextDigestMismatch));
    }

    [Test]
    public void A_flipped_ciphertext_bit_is_rejected_with_segment_authentication_failed()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (2 * TestModel.Segment) + 5);
        model.Encrypt();
        Tamper.FlipBit(model.CipherPath("w.bin"), Tamper.SegmentOffset(2) + 3);
        Assert.That(model.DecryptFails(checkSignature: false).Reason, Is.EqualTo(ModelError.SegmentAuthenticationFailed));
    }
}

[TestFixture]
public sealed class Any_header_change_is_detected
{
    [Test]
    public void Every_bit_of_the_header_flipped_is_rejected_with_a_header_reason()
    {
        using var key = ModelKey.Generate();
        using var cipher = new MemoryStream();
        ModelFileEncryptor.EncryptAsync(new MemoryStream(new byte[100]), 100, cipher, key, TestModel.KeyId, TestModel.Segment).GetAwaiter().GetResult();
        var original = cipher.ToArray();
        var headerLength = ModelFileHeader.HeaderLengthFor(TestModel.KeyId);
        for (var offset = 0; offset < headerLength; offset++)
        {
            for (var bit = 0; bit < 8; bit++)
            {
                var bytes = (byte[])original.Clone();
                bytes[offset] ^= (byte)(1 << bit);
                var ex = Assert.Throws<ModelException>(() => EncryptedModelFile.Open(bytes, key, TestModel.KeyId).Dispose(), $"offset {offset} bit {bit}")!;
                Assert.That(ex.Reason, Is.AnyOf(ExpectedReasons(offset)), $"offset 0x{offset:X2} bit {bit}");
            }
        }
    }

    [Test]
    public void A_changed_salt_byte_in_a_model_file_is_rejected_with_header_authentication_failed()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", TestModel.Segment + 1);
        model.Encrypt();
        Tamper.FlipBit(model.CipherPath("w.bin"), ModelFileHeader.SaltOffset + 5, 3);
        Assert.That(model.DecryptFails(checkSignature: false).Reason, Is.EqualTo(ModelError.HeaderAuthenticationFailed));
    }

    [Test]
    public void A_changed_plaintext_length_is_rejected_with_header_authentication_failed()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", TestModel.Segment + 1);
        model.Encrypt();
        Tamper.FlipBit(model.CipherPath("w.bin"), ModelFileHeader.PlaintextLengthOffset, 0);
        var ex = Assert.Throws<ModelException>(() =>
        {
            using var key = ModelKey.FromBytes(model.KeyBytes);
            EncryptedModelFile.Open(File.ReadAllBytes(model.CipherPath("w.bin")), key, TestModel.KeyId).Dispose();
        })!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.HeaderAuthenticationFailed));
    }

    private static ModelError[] ExpectedReasons(int offset)
    {
        var keyIdEnd = ModelFileHeader.KeyIdOffset + TestModel.KeyId.Length;
        return offset switch
        {
            < ModelFileHeader.VersionOffset => [ModelError.BadMagic],
            ModelFileHeader.VersionOffset => [ModelError.UnsupportedVersion],
            ModelFileHeader.SuiteOffset => [ModelError.UnsupportedSuite],
            < ModelFileHeader.HeaderLengthOffset => [ModelError.ReservedFlagsSet],
            < ModelFileHeader.SegmentSizeOffset => [ModelError.HeaderMalformed],
            < ModelFileHeader.PlaintextLengthOffset => [ModelError.SegmentSizeOutOfRange, ModelError.HeaderAuthenticationFailed],
            < ModelFileHeader.SaltOffset => [ModelError.HeaderMalformed, ModelError.HeaderAuthenticationFailed],
            < ModelFileHeader.KeyIdLengthOffset => [ModelError.HeaderAuthenticationFailed],
            ModelFileHeader.KeyIdLengthOffset => [ModelError.HeaderMalformed, ModelError.KeyIdInvalid],
            _ when offset < keyIdEnd => [ModelError.KeyIdInvalid, ModelError.KeyIdMismatch],
            _ => [ModelError.HeaderAuthenticationFailed],
        };
    }
}

[TestFixture]
public sealed class Wrong_keys_are_rejected
{
    [Test]
    public void A_wrong_model_key_is_rejected_with_header_authentication_failed()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 1000);
        model.Encrypt();
        var wrong = (byte[])model.KeyBytes.Clone();
        wrong[0] ^= 1;
        Assert.That(model.DecryptFails(key: wrong).Reason, Is.EqualTo(ModelError.HeaderAuthenticationFailed));
    }

    [Test]
    public void An_expected_key_id_different_from_the_manifest_is_rejected_with_key_id_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 1000);
        model.Encrypt();
        Assert.That(model.DecryptFails(expectedKeyId: "models/other:v1").Reason, Is.EqualTo(ModelError.KeyIdMismatch));
    }

    [Test]
    public void A_file_encrypted_under_another_key_id_than_the_manifest_is_rejected_with_key_id_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 1000);
        model.Encrypt(keyId: "models/model-a:v1");
        var manifest = ModelManifest.Parse(File.ReadAllBytes(model.ManifestPath));
        model.RewriteManifest(new ModelManifest("models/model-b:v1", manifest.SegmentSize, manifest.Files), resign: true);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.KeyIdMismatch));
    }
}

[TestFixture]
public sealed class Failures_leave_no_plaintext_behind
{
    [Test]
    public void A_failure_in_a_later_file_deletes_the_files_already_decrypted_in_the_run()
    {
        using var model = new TestModel();
        model.AddFile("a/first.bin", TestModel.Segment + 3);
        model.AddFile("z/last.bin", (2 * TestModel.Segment) + 3);
        model.Encrypt();
        Tamper.FlipBit(model.CipherPath("z/last.bin"), Tamper.SegmentOffset(2) + 1);
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.SegmentAuthenticationFailed));
        Assert.That(Directory.Exists(model.Destination), Is.False, "the destination created by the run is removed");
    }

    [Test]
    public void An_existing_destination_file_is_not_overwritten_and_is_left_alone()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt();
        Directory.CreateDirectory(model.Destination);
        File.WriteAllText(Path.Combine(model.Destination, "w.bin"), "mine");
        var ex = Assert.Throws<ModelException>(() => model.Decrypt())!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Reason, Is.EqualTo(ModelError.DestinationUnsafe));
            Assert.That(File.ReadAllText(Path.Combine(model.Destination, "w.bin")), Is.EqualTo("mine"));
        });
    }
}
