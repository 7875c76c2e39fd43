using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class Model_directories_round_trip
{
    private const int S = TestModel.Segment;

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(S - 1)]
    [TestCase(S)]
    [TestCase(S + 1)]
    [TestCase((5 * S) + 12345)]
    public void A_file_of_this_size_decrypts_to_the_same_bytes(int size)
    {
        using var model = new TestModel();
        var data = model.AddFile("weights/shard-0001.safetensors", size);
        model.Encrypt();
        var result = model.Decrypt();
        Assert.Multiple(() =>
        {
            Assert.That(result.Files, Is.EqualTo(1));
            Assert.That(result.SignatureChecked, Is.True);
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "weights", "shard-0001.safetensors")), Is.EqualTo(data));
            Assert.That(new FileInfo(model.CipherPath("weights/shard-0001.safetensors")).Length, Is.EqualTo(ModelFileHeader.CiphertextLengthFor(ModelFileHeader.HeaderLengthFor(TestModel.KeyId), size, S)));
        });
    }

    [Test]
    public void A_directory_with_shards_tokenizer_and_config_decrypts_to_the_same_tree_and_leaves_no_temporary_files()
    {
        using var model = new TestModel();
        var files = new Dictionary<string, byte[]>
        {
            ["model-00001-of-00002.safetensors"] = model.AddFile("model-00001-of-00002.safetensors", (2 * S) + 7),
            ["model-00002-of-00002.safetensors"] = model.AddFile("model-00002-of-00002.safetensors", S),
            ["tokenizer/tokenizer.json"] = model.AddFile("tokenizer/tokenizer.json", 3000),
            ["config.json"] = model.AddFile("config.json", 200),
            ["empty.txt"] = model.AddFile("empty.txt", 0),
        };
        model.Encrypt();
        model.Decrypt();
        var actual = Directory.EnumerateFiles(model.Destination, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(model.Destination, p).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();
        Assert.That(actual, Is.EqualTo(files.Keys.Order(StringComparer.Ordinal).ToList()));
        foreach (var (path, data) in files)
        {
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, path)), Is.EqualTo(data), path);
        }
    }

    [Test]
    public void Decrypting_with_one_worker_gives_the_same_bytes_as_with_many()
    {
        using var model = new TestModel();
        var data = model.AddFile("w.bin", (3 * S) + 99);
        model.Encrypt();
        var options = new ModelDecryptionOptions { PublisherKey = model.Publisher, Workers = 1 };
        ModelDecryptor.DecryptAsync(new DirectoryModelSource(model.Encrypted), model.Key(), model.Destination, options).GetAwaiter().GetResult();
        Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "w.bin")), Is.EqualTo(data));
    }
}

[TestFixture]
public sealed class Streaming_format_round_trips_for_random_sizes_and_segment_sizes
{
    [Test]
    public void Every_segment_decrypted_alone_reassembles_the_plaintext()
    {
        Gen.Select(Gen.Int[ModelFileHeader.MinSegmentSize, ModelFileHeader.MaxSegmentSize], Gen.Double[0, 2.5], Gen.Int[0, 2])
            .Sample(
                t =>
                {
                    var (segmentSize, segments, extra) = t;
                    var size = (int)(segments * segmentSize) + extra;
                    var plain = new byte[size];
                    new Random(size ^ segmentSize).NextBytes(plain);
                    using var key = ModelKey.Generate();
                    using var cipher = new MemoryStream();
                    ModelFileEncryptor.EncryptAsync(new MemoryStream(plain), size, cipher, key, "k", segmentSize).GetAwaiter().GetResult();
                    var bytes = cipher.ToArray();
                    using var file = EncryptedModelFile.Open(bytes, key, "k");
                    Assert.That(bytes, Has.Length.EqualTo(file.Header.CiphertextLength));
                    var output = new byte[size];
                    for (long i = file.Header.SegmentCount - 1; i >= 0; i--)
                    {
                        var segment = bytes.AsSpan((int)file.SegmentOffset(i), file.SegmentCiphertextLength(i));
                        file.DecryptSegment(i, segment, output.AsSpan((int)(i * segmentSize)));
                    }

                    Assert.That(output, Is.EqualTo(plain));
                },
                iter: 12);
    }

    [Test]
    public void The_pipeline_round_trips_random_sizes_through_a_memory_backed_destination()
    {
        Gen.Select(Gen.Int[0, (3 * TestModel.Segment) + 3], Gen.Int[1, 3])
            .Sample(
                t =>
                {
                    var (size, workers) = t;
                    using var model = new TestModel();
                    var data = model.AddFile("m.bin", size);
                    model.Encrypt(sign: false);
                    var options = new ModelDecryptionOptions { Workers = workers };
                    ModelDecryptor.DecryptAsync(new DirectoryModelSource(model.Encrypted), model.Key(), model.Destination, options).GetAwaiter().GetResult();
                    Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "m.bin")), Is.EqualTo(data));
                },
                iter: 8);
    }
}

[TestFixture]
public sealed class Segments_can_be_decrypted_by_random_access
{
    [Test]
    public void Segment_i_read_from_the_file_alone_equals_that_slice_of_the_plaintext()
    {
        using var model = new TestModel();
        var data = model.AddFile("w.bin", (4 * TestModel.Segment) + 10);
        model.Encrypt();
        var path = model.CipherPath("w.bin");
        using var handle = File.OpenHandle(path);
        var header = new byte[ModelFileHeader.MaxHeaderLength];
        RandomAccess.Read(handle, header, 0);
        using var key = model.Key();
        using var file = EncryptedModelFile.Open(header, key, TestModel.KeyId);
        var plain = new byte[TestModel.Segment];
        foreach (var i in new long[] { 4, 2, 0 })
        {
            var n = file.ReadAndDecryptSegment(handle, i, plain);
            Assert.That(plain.AsSpan(0, n).ToArray(), Is.EqualTo(data.AsSpan((int)(i * TestModel.Segment), n).ToArray()), $"segment {i}");
        }
    }

    [Test]
    public void A_segment_index_past_the_end_is_rejected_with_segment_index_out_of_range()
    {
        using var key = ModelKey.Generate();
        using var cipher = new MemoryStream();
        ModelFileEncryptor.EncryptAsync(new MemoryStream(new byte[10]), 10, cipher, key, "k", TestModel.Segment).GetAwaiter().GetResult();
        using var file = EncryptedModelFile.Open(cipher.ToArray(), key, "k");
        var ex = Assert.Throws<ModelException>(() => file.SegmentOffset(1))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SegmentIndexOutOfRange));
    }
}
