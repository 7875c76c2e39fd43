using System.Security.Cryptography;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

/// <summary>A scratch model for one test: plaintext and ciphertext on /tmp, destination on /dev/shm (tmpfs). Deleted on dispose.</summary>
internal sealed class TestModel : IDisposable
{
    public const int Segment = ModelFileHeader.MinSegmentSize;
    public const string KeyId = "models/test-model:v1";

    private static readonly string ShmRoot = "/dev/shm";

    public TestModel()
    {
        var tag = "ab-models-test-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        Root = Path.Combine(Path.GetTempPath(), tag);
        Plain = Path.Combine(Root, "plain");
        Encrypted = Path.Combine(Root, "enc");
        Directory.CreateDirectory(Plain);
        if (!Directory.Exists(ShmRoot) || MemoryVolume.Probe(ShmRoot).Kind != VolumeKind.Tmpfs)
        {
            Assert.Ignore("/dev/shm is missing or not tmpfs: no memory-backed destination for this test");
        }

        ShmDir = Path.Combine(ShmRoot, tag);
        Destination = Path.Combine(ShmDir, "out");
        KeyBytes = RandomNumberGenerator.GetBytes(ModelKey.Length);
        Publisher = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    }

    public string Root { get; }

    public string Plain { get; }

    public string Encrypted { get; }

    public string ShmDir { get; }

    public string Destination { get; }

    public byte[] KeyBytes { get; }

    public ECDsa Publisher { get; }

    public ModelKey Key() => ModelKey.FromBytes(KeyBytes);

    public byte[] AddFile(string relative, int size, int seed = 1)
    {
        var data = new byte[size];
        new Random(seed + size).NextBytes(data);
        var path = Path.Combine(Plain, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, data);
        return data;
    }

    public ModelManifest Encrypt(bool sign = true, string keyId = KeyId, int segmentSize = Segment, CiphertextTreeHash treeHash = CiphertextTreeHash.Blake3)
    {
        using var key = Key();
        return ModelEncryptor.EncryptDirectoryAsync(Plain, Encrypted, key, keyId, sign ? Publisher : null, segmentSize, treeHash).GetAwaiter().GetResult();
    }

    public string CipherPath(string relative) => Path.Combine(Encrypted, relative + ModelManifest.CiphertextSuffix);

    public string ManifestPath => Path.Combine(Encrypted, ModelManifest.FileName);

    public string SignaturePath => Path.Combine(Encrypted, ModelManifest.SignatureFileName);

    public ModelDecryptionResult Decrypt(bool checkSignature = true, byte[]? key = null, string? expectedKeyId = null, bool allowDisk = false, string? destination = null, ECDsa? publisher = null)
    {
        var options = new ModelDecryptionOptions
        {
            PublisherKey = checkSignature ? publisher ?? Publisher : null,
            ExpectedKeyId = expectedKeyId,
            AllowDisk = allowDisk,
        };
        return ModelDecryptor.DecryptAsync(new DirectoryModelSource(Encrypted), ModelKey.FromBytes(key ?? KeyBytes), destination ?? Destination, options).GetAwaiter().GetResult();
    }

    public ModelException DecryptFails(bool checkSignature = true, byte[]? key = null, string? expectedKeyId = null)
    {
        var ex = Assert.Throws<ModelException>(() => Decrypt(checkSignature, key, expectedKeyId))!;
        AssertNothingAtDestination();
        return ex;
    }

    public void AssertNothingAtDestination()
    {
        var leftovers = Directory.Exists(Destination) ? Directory.EnumerateFileSystemEntries(Destination, "*", SearchOption.AllDirectories).ToList() : [];
        Assert.That(leftovers, Is.Empty, "plaintext or directories left at the destination after a failure");
    }

    /// <summary>Rewrites the manifest (and re-signs it with the publisher key, as a malicious-but-signing publisher would not need to).</summary>
    public void RewriteManifest(ModelManifest manifest, bool resign)
    {
        var json = manifest.ToJson();
        File.WriteAllBytes(ManifestPath, json);
        if (resign)
        {
            File.WriteAllText(SignaturePath, ManifestSigning.Sign(json, Publisher));
        }
    }

    public void Dispose()
    {
        Publisher.Dispose();
        foreach (var d in new[] { Root, ShmDir })
        {
            if (d is not null && Directory.Exists(d))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }
}
