using System.Text;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

[TestFixture]
public sealed class Destination_paths_through_symbolic_links_are_refused
{
    [Test]
    public void A_destination_subdirectory_that_is_a_symbolic_link_is_rejected_with_destination_unsafe_and_nothing_is_written_through_it()
    {
        using var model = new TestModel();
        model.AddFile("sub/w.bin", 10);
        model.Encrypt();
        var elsewhere = Path.Combine(model.ShmDir, "elsewhere");
        Directory.CreateDirectory(elsewhere);
        Directory.CreateDirectory(model.Destination);
        Directory.CreateSymbolicLink(Path.Combine(model.Destination, "sub"), elsewhere);
        var ex = Assert.Throws<ModelException>(() => model.Decrypt())!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Reason, Is.EqualTo(ModelError.DestinationUnsafe));
            Assert.That(Directory.EnumerateFileSystemEntries(elsewhere), Is.Empty);
        });
    }
}

[TestFixture]
public sealed class The_signature_is_checked_before_the_manifest_is_parsed
{
    [Test]
    public void A_garbage_manifest_with_a_publisher_key_configured_is_rejected_with_manifest_signature_invalid()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        model.Encrypt();
        File.WriteAllText(model.ManifestPath, "{ not json");
        Assert.That(model.DecryptFails().Reason, Is.EqualTo(ModelError.ManifestSignatureInvalid));
    }
}

[TestFixture]
public sealed class Model_directories_with_symbolic_links_are_not_encrypted
{
    [Test]
    public void A_symbolic_link_in_the_model_directory_is_rejected_with_source_invalid()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", 10);
        File.CreateSymbolicLink(Path.Combine(model.Plain, "link.bin"), "/etc/hostname");
        var ex = Assert.Throws<ModelException>(() => model.Encrypt())!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.SourceInvalid));
    }
}

[TestFixture]
public sealed class An_extended_HTTP_body_is_rejected
{
    [Test]
    public void A_served_ciphertext_longer_than_the_manifest_says_is_rejected_with_ciphertext_length_mismatch()
    {
        using var model = new TestModel();
        model.AddFile("w.bin", TestModel.Segment + 1);
        model.Encrypt();
        using (var s = new FileStream(model.CipherPath("w.bin"), FileMode.Append))
        {
            s.Write(Encoding.ASCII.GetBytes("trailing"));
        }

        using var server = new LocalFileServer(model.Encrypted);
        using var http = new HttpClient();
        var ex = Assert.ThrowsAsync<ModelException>(() => ModelDecryptor.DecryptAsync(new HttpModelSource(http, server.BaseUri), model.Key(), model.Destination, new ModelDecryptionOptions { PublisherKey = model.Publisher }))!;
        Assert.That(ex.Reason, Is.EqualTo(ModelError.CiphertextLengthMismatch));
        model.AssertNothingAtDestination();
    }
}
