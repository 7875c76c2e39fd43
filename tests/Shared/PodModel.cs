using System.Security.Cryptography;
using AttestBroker.Cli;
using NUnit.Framework;

namespace AttestBroker.Testing;

/// <summary>Encrypted models for the attestbroker-node tests, made with <c>attestbroker model encrypt</c>.</summary>
internal sealed class PodModel : IDisposable
{
    public PodModel(string prefix)
    {
        Root = Directory.CreateTempSubdirectory(prefix).FullName;
        var plain = Path.Combine(Root, "plain");
        Directory.CreateDirectory(Path.Combine(plain, "tokenizer"));
        Weights = RandomNumberGenerator.GetBytes((3 << 20) + 1);
        File.WriteAllBytes(Path.Combine(plain, "model.safetensors"), Weights);
        File.WriteAllText(Path.Combine(plain, "tokenizer", "tokenizer.json"), "{\"version\":\"1.0\"}");
        KeyFile = Path.Combine(Root, "model.key");
        File.WriteAllBytes(KeyFile, RandomNumberGenerator.GetBytes(32));
        using var publisher = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var signKey = Path.Combine(Root, "publisher.key");
        File.WriteAllText(signKey, publisher.ExportPkcs8PrivateKeyPem());
        PublisherKey = Path.Combine(Root, "publisher.pub");
        File.WriteAllText(PublisherKey, publisher.ExportSubjectPublicKeyInfoPem());
        Encrypted = Path.Combine(Root, "enc");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = CliApp.RunAsync(["model", "encrypt", plain, "--key-id", "m1", "--key-file", KeyFile, "--out", Encrypted, "--sign-key", signKey], stdout, stderr).GetAwaiter().GetResult();
        if (exit != 0)
        {
            throw new InvalidOperationException("attestbroker model encrypt failed: " + stderr);
        }
    }

    public string Root { get; }

    public byte[] Weights { get; }

    public string KeyFile { get; }

    public string PublisherKey { get; }

    public string Encrypted { get; }

    /// <summary>A copy of the encrypted model with one ciphertext byte of the weights flipped, past the header.</summary>
    public string Tampered()
    {
        var copy = Path.Combine(Root, "tampered");
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(Encrypted))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        var weights = Path.Combine(copy, "model.safetensors.menc");
        var bytes = File.ReadAllBytes(weights);
        bytes[(2 << 20) + 5] ^= 0x01;
        File.WriteAllBytes(weights, bytes);
        return copy;
    }

    /// <summary>A refusal: exit 1, the reason code in the message, and nothing left at the destination.</summary>
    public static void AssertRefused((int Exit, string Out, string Err) result, string destination, string reason)
    {
        Assert.Multiple(() =>
        {
            Assert.That(result.Exit, Is.EqualTo(1), result.Err);
            Assert.That(result.Err, Does.Contain(reason));
            Assert.That(Directory.Exists(destination) ? Directory.GetFileSystemEntries(destination, "*", SearchOption.AllDirectories) : [], Is.Empty);
        });
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
