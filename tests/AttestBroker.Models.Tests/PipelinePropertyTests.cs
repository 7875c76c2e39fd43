using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class The_parallel_pipeline_holds_for_random_sizes_segment_sizes_and_workers
{
    [Test]
    public void Any_size_segment_size_and_worker_count_round_trips_and_reports_every_byte()
    {
        Gen.Select(Gen.Int[ModelFileHeader.MinSegmentSize, ModelFileHeader.MaxSegmentSize], Gen.Double[0, 2.2], Gen.Int[-1, 1], Gen.Int[1, 3])
            .Sample(
                t =>
                {
                    var (segmentSize, segments, nudge, workers) = t;
                    var size = Math.Max(0, (int)(segments * segmentSize) + nudge);
                    using var model = new TestModel();
                    var data = model.AddFile("m.bin", size, seed: segmentSize);
                    model.Encrypt(sign: false, segmentSize: segmentSize);
                    var progress = new DecryptionProgress();
                    var options = new ModelDecryptionOptions { Workers = workers, Progress = progress };
                    ModelDecryptor.DecryptAsync(new DirectoryModelSource(model.Encrypted), model.Key(), model.Destination, options).GetAwaiter().GetResult();
                    Assert.Multiple(() =>
                    {
                        Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "m.bin")), Is.EqualTo(data), $"size {size}, segment {segmentSize}, workers {workers}");
                        Assert.That(progress.BytesDone, Is.EqualTo(size));
                        Assert.That(Directory.GetFiles(model.Destination, ".*", SearchOption.AllDirectories), Is.Empty, "temporary files left");
                    });
                },
                iter: 8);
    }

    [Test]
    public void Any_single_byte_changed_anywhere_in_a_file_is_rejected_and_leaves_nothing()
    {
        using var model = new TestModel();
        model.AddFile("a.bin", (5 * TestModel.Segment) + 3);
        model.AddFile("b.bin", 100);
        model.Encrypt();
        var path = model.CipherPath("a.bin");
        var original = File.ReadAllBytes(path);
        Gen.Select(Gen.Int[0, original.Length - 1], Gen.Byte[1, 255])
            .Sample(
                t =>
                {
                    var (at, xor) = t;
                    var changed = (byte[])original.Clone();
                    changed[at] ^= xor;
                    File.WriteAllBytes(path, changed);
                    try
                    {
                        var ex = Assert.Throws<ModelException>(() => model.Decrypt(checkSignature: true))!;
                        Assert.That(ex.IsVerificationFailure, Is.True, $"byte {at}: {ex.Reason}");
                        model.AssertNothingAtDestination();
                    }
                    finally
                    {
                        File.WriteAllBytes(path, original);
                    }
                },
                iter: 20,
                threads: 1);
    }
}
