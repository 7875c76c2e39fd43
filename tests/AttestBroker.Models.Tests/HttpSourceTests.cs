using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class Models_stream_from_an_HTTP_base_URL
{
    [Test]
    public void A_model_served_over_HTTP_decrypts_to_the_same_bytes()
    {
        using var model = new TestModel();
        var data = model.AddFile("w/shard.bin", (2 * TestModel.Segment) + 17);
        var config = model.AddFile("config.json", 50);
        model.Encrypt();
        using var server = new LocalFileServer(model.Encrypted);
        using var http = new HttpClient();
        var options = new ModelDecryptionOptions { PublisherKey = model.Publisher };
        ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, options).GetAwaiter().GetResult();
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "w", "shard.bin")), Is.EqualTo(data));
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "config.json")), Is.EqualTo(config));
        });
    }

    [Test]
    public void A_stream_cut_mid_segment_is_resumed_with_a_range_request_from_the_start_of_that_segment()
    {
        using var model = new TestModel();
        var data = model.AddFile("w.bin", (3 * TestModel.Segment) + 5);
        model.Encrypt();
        var cutAt = Tamper.SegmentOffset(1) + 12345;
        using var server = new LocalFileServer(model.Encrypted, "w.bin.menc", cutAt, cuts: 1);
        using var http = new HttpClient();
        ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher }).GetAwaiter().GetResult();
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "w.bin")), Is.EqualTo(data));
            Assert.That(server.Requests, Does.Contain($"w.bin.menc bytes={Tamper.SegmentOffset(1)}-"));
        });
    }

    [Test]
    public void Streams_cut_in_a_later_batch_and_in_the_last_segment_resume_with_two_workers_and_give_identical_bytes()
    {
        using var model = new TestModel();
        var data = model.AddFile("w.bin", (9 * TestModel.Segment) + 77);
        model.Encrypt();
        var server = new LocalFileServer(model.Encrypted, "w.bin.menc", Tamper.SegmentOffset(6) + 1, cuts: 1);
        using (server)
        {
            using var http = new HttpClient();
            var progress = new DecryptionProgress();
            var options = new ModelDecryptionOptions { PublisherKey = model.Publisher, Workers = 2, Progress = progress };
            ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, options).GetAwaiter().GetResult();
            Assert.Multiple(() =>
            {
                Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "w.bin")), Is.EqualTo(data));
                Assert.That(server.Requests, Does.Contain($"w.bin.menc bytes={Tamper.SegmentOffset(6)}-"));
                Assert.That(progress.BytesDone, Is.EqualTo(data.Length));
                Assert.That(progress.TotalBytes, Is.EqualTo(data.Length));
            });
        }

        Directory.Delete(model.Destination, recursive: true);
        using var last = new LocalFileServer(model.Encrypted, "w.bin.menc", Tamper.SegmentOffset(9) + 40, cuts: 1);
        using var http2 = new HttpClient();
        ModelDecryptor.DecryptAsync(new HttpModelSource(http2, last.BaseUri), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher, Workers = 2 }).GetAwaiter().GetResult();
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllBytes(Path.Combine(model.Destination, "w.bin")), Is.EqualTo(data));
            Assert.That(last.Requests, Does.Contain($"w.bin.menc bytes={Tamper.SegmentOffset(9)}-"));
        });
    }

    [Test]
    public void A_server_that_ignores_range_after_a_cut_is_rejected_with_source_unavailable_and_nothing_is_left()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (3 * TestModel.Segment) + 5);
        model.Encrypt();
        using var server = new LocalFileServer(model.Encrypted, "w.bin.menc", Tamper.SegmentOffset(2) + 10, cuts: 1, honourRange: false);
        using var http = new HttpClient();
        var ex = Assert.ThrowsAsync<ModelException>(() => ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher }))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SourceUnavailable));
        model.AssertNothingAtDestination();
    }

    [Test]
    public void A_stream_cut_more_often_than_allowed_is_rejected_with_source_unavailable_and_nothing_is_left()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", (2 * TestModel.Segment) + 5);
        model.Encrypt();
        using var server = new LocalFileServer(model.Encrypted, "w.bin.menc", Tamper.SegmentOffset(1) + 10, cuts: 100);
        using var http = new HttpClient();
        var ex = Assert.ThrowsAsync<ModelException>(() => ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri, maxResumes: 2), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher }))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SourceUnavailable));
        model.AssertNothingAtDestination();
    }
}
