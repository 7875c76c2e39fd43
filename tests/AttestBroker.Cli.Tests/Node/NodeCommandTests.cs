using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Cli.Commands;
using AttestBroker.Models;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Node;

/// <summary>An encrypted model on /tmp, its key file and publisher key, and a destination on /dev/shm; deleted on dispose.</summary>
internal sealed class NodeScratch : IDisposable
{
    public const string KeyId = "models/node-test:v1";
    public const int Segment = ModelFileHeader.MinSegmentSize;

    public NodeScratch(params (string Path, int Size)[] files)
    {
        if (MemoryVolume.Probe("/dev/shm").Kind != VolumeKind.Tmpfs)
        {
            Assert.Ignore("/dev/shm is missing or not tmpfs");
        }

        var tag = "ab-node-test-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        Root = Path.Combine(Path.GetTempPath(), tag);
        Shm = Path.Combine("/dev/shm", tag);
        Directory.CreateDirectory(Path.Combine(Root, "plain"));
        foreach (var (path, size) in files)
        {
            var data = new byte[size];
            new Random(size + path.Length).NextBytes(data);
            var full = Path.Combine(Root, "plain", path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllBytes(full, data);
            Files[path] = data;
        }

        var key = RandomNumberGenerator.GetBytes(32);
        KeyFile = Path.Combine(Root, "model.key");
        File.WriteAllText(KeyFile, Convert.ToBase64String(key) + "\n");
        using var publisher = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        PublisherKeyFile = Path.Combine(Root, "publisher.pub");
        File.WriteAllText(PublisherKeyFile, publisher.ExportSubjectPublicKeyInfoPem());
        using var modelKey = ModelKey.FromBytes(key);
        Manifest = ModelEncryptor.EncryptDirectoryAsync(Path.Combine(Root, "plain"), Encrypted, modelKey, KeyId, publisher).GetAwaiter().GetResult();
        CryptographicOperations.ZeroMemory(key);
    }

    public string Root { get; }

    public string Shm { get; }

    public string Encrypted => Path.Combine(Root, "enc");

    public string Destination => Path.Combine(Shm, "out");

    public string KeyFile { get; }

    public string PublisherKeyFile { get; }

    public ModelManifest Manifest { get; }

    public Dictionary<string, byte[]> Files { get; } = new(StringComparer.Ordinal);

    public void AssertDecrypted()
    {
        foreach (var (path, data) in Files)
        {
            Assert.That(File.ReadAllBytes(Path.Combine(Destination, path)), Is.EqualTo(data), path);
        }

        Assert.That(Directory.GetFiles(Destination, "*", SearchOption.AllDirectories), Has.Length.EqualTo(Files.Count), "only the model's files");
    }

    public void AssertNothingAtDestination()
    {
        var left = Directory.Exists(Destination) ? Directory.GetFileSystemEntries(Destination, "*", SearchOption.AllDirectories) : [];
        Assert.That(left, Is.Empty, "nothing may be left at the destination");
    }

    public void Dispose()
    {
        foreach (var d in new[] { Root, Shm })
        {
            if (Directory.Exists(d))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }
}

[TestFixture]
public sealed class Node_fetch_model_with_a_key_file
{
    private const int S = NodeScratch.Segment;

    [Test]
    public async Task A_local_model_is_decrypted_into_tmpfs_with_JSON_progress_lines_that_parse()
    {
        using var scratch = new NodeScratch(("model-00001-of-00002.safetensors", (3 * S) + 11), ("model-00002-of-00002.safetensors", S), ("tokenizer/tokenizer.json", 900), ("empty", 0));
        var (exit, stdout, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--key-file", scratch.KeyFile,
            "--out", scratch.Destination, "--publisher-key", scratch.PublisherKeyFile);
        Assert.That(exit, Is.EqualTo(0), stderr);
        scratch.AssertDecrypted();
        Assert.That(stdout, Does.Contain("manifest signature verified"));

        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var total = scratch.Files.Values.Sum(d => (long)d.Length);
        Assert.That(lines, Is.Not.Empty, "progress is reported as JSON lines when stderr is not a terminal");
        foreach (var line in lines)
        {
            Assert.That(line.Select(p => p.Key), Is.EquivalentTo(new[] { "bytes", "total", "bytes_per_second", "eta_seconds", "file" }));
            Assert.That((long)line["total"]!, Is.EqualTo(total));
            Assert.That((long)line["bytes"]!, Is.InRange(0, total));
        }

        Assert.Multiple(() =>
        {
            Assert.That((long)lines[^1]["bytes"]!, Is.EqualTo(total), "the last line says everything is done");
            Assert.That((double)lines[^1]["eta_seconds"]!, Is.Zero);
            Assert.That(scratch.Files.Keys, Does.Contain((string)lines[^1]["file"]!));
        });
    }

    [Test]
    public async Task A_model_over_HTTP_whose_stream_is_cut_mid_segment_resumes_and_gives_identical_bytes()
    {
        using var scratch = new NodeScratch(("w.bin", (5 * S) + 3));
        var headerLength = ModelFileHeader.HeaderLengthFor(NodeScratch.KeyId);
        var segment3 = headerLength + (3L * (S + 16));
        using var server = new LocalFileServer(scratch.Encrypted, "w.bin.menc", segment3 + 4000, cuts: 1);
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", server.BaseUri.AbsoluteUri, "--key-id", NodeScratch.KeyId, "--key-file", scratch.KeyFile,
            "--out", scratch.Destination, "--publisher-key", scratch.PublisherKeyFile, "--progress", "none");
        Assert.That(exit, Is.EqualTo(0), stderr);
        scratch.AssertDecrypted();
        Assert.That(server.Requests, Does.Contain($"w.bin.menc bytes={segment3}-"));
    }

    [Test]
    public async Task A_disk_backed_destination_is_refused_with_exit_2_before_the_key_is_read_and_nothing_is_written()
    {
        using var scratch = new NodeScratch(("w.bin", 10));
        var onDisk = Path.Combine(scratch.Root, "out");
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--key-file", Path.Combine(scratch.Root, "no-such.key"),
            "--out", onDisk);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("[DestinationNotMemoryBacked]").And.Contain("--allow-disk"));
            Assert.That(Directory.Exists(onDisk), Is.False);
        });
    }

    [Test]
    public async Task With_allow_disk_a_disk_backed_destination_is_used()
    {
        using var scratch = new NodeScratch(("w.bin", S + 1));
        var onDisk = Path.Combine(scratch.Root, "out");
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--key-file", scratch.KeyFile,
            "--out", onDisk, "--allow-disk", "--progress", "none");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(File.ReadAllBytes(Path.Combine(onDisk, "w.bin")), Is.EqualTo(scratch.Files["w.bin"]));
    }

    [Test]
    public async Task A_wrong_key_id_is_refused_with_exit_1_and_key_id_mismatch()
    {
        using var scratch = new NodeScratch(("w.bin", 10));
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", "models/other:v1", "--key-file", scratch.KeyFile,
            "--out", scratch.Destination, "--publisher-key", scratch.PublisherKeyFile);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("[KeyIdMismatch]"));
        });
        scratch.AssertNothingAtDestination();
    }

    [Test]
    public async Task A_wrong_model_key_is_refused_with_exit_1_and_nothing_left()
    {
        using var scratch = new NodeScratch(("w.bin", (2 * S) + 1));
        File.WriteAllText(scratch.KeyFile, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--key-file", scratch.KeyFile,
            "--out", scratch.Destination, "--publisher-key", scratch.PublisherKeyFile);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("[HeaderAuthenticationFailed]"));
        });
        scratch.AssertNothingAtDestination();
    }

    [Test]
    public async Task A_manifest_with_a_bad_signature_is_refused_with_exit_1()
    {
        using var scratch = new NodeScratch(("w.bin", 10));
        var sig = Path.Combine(scratch.Encrypted, ModelManifest.SignatureFileName);
        var der = Convert.FromBase64String(File.ReadAllText(sig));
        der[^1] ^= 0x40;
        File.WriteAllText(sig, Convert.ToBase64String(der));
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--key-file", scratch.KeyFile,
            "--out", scratch.Destination, "--publisher-key", scratch.PublisherKeyFile);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("[ManifestSignatureInvalid]"));
        });
        scratch.AssertNothingAtDestination();
    }

    [Test]
    public async Task A_changed_digest_in_a_manifest_that_is_not_checked_against_a_publisher_key_is_refused_with_exit_1()
    {
        using var scratch = new NodeScratch(("a.bin", S + 5), ("b.bin", 20));
        var changed = scratch.Manifest.Files.Select(f => f.Path == "b.bin" ? f with { CiphertextTreeRoot = SHA256.HashData(f.CiphertextTreeRoot) } : f).ToList();
        File.WriteAllBytes(Path.Combine(scratch.Encrypted, ModelManifest.FileName), new ModelManifest(NodeScratch.KeyId, S, changed).ToJson());
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--key-file", scratch.KeyFile,
            "--out", scratch.Destination, "--progress", "none");
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("[CiphertextDigestMismatch]").And.Contain("b.bin"));
        });
        scratch.AssertNothingAtDestination();
    }

    [TestCase("none", "give the key source")]
    [TestCase("both", "not both")]
    [TestCase("evidence-without-broker", "--evidence applies to --broker only")]
    [TestCase("workers", "--workers must be 1 .. 64")]
    [TestCase("progress", "Argument 'sometimes' not recognized")]
    public async Task A_usage_error_exits_2_with_a_message(string which, string message)
    {
        using var scratch = new NodeScratch(("w.bin", 10));
        var args = new List<string> { "node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--out", scratch.Destination };
        switch (which)
        {
            case "both":
                args.AddRange(["--key-file", scratch.KeyFile, "--broker", "https://broker.example"]);
                break;
            case "evidence-without-broker":
                args.AddRange(["--key-file", scratch.KeyFile, "--evidence", "configfs"]);
                break;
            case "workers":
                args.AddRange(["--key-file", scratch.KeyFile, "--workers", "0"]);
                break;
            case "progress":
                args.AddRange(["--key-file", scratch.KeyFile, "--progress", "sometimes"]);
                break;
        }

        var (exit, _, stderr) = await CliRunner.RunAsync([.. args]);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain(message));
        });
        scratch.AssertNothingAtDestination();
    }

    [Test]
    public async Task A_broker_that_cannot_be_reached_exits_3_and_nothing_is_written()
    {
        using var scratch = new NodeScratch(("w.bin", 10));
        var (exit, _, stderr) = await CliRunner.RunAsync("node", "fetch-model", "--model", scratch.Encrypted, "--key-id", NodeScratch.KeyId, "--out", scratch.Destination,
            "--broker", "http://127.0.0.1:1", "--allow-http", "--retries", "0", "--evidence", "sim:http://127.0.0.1:1");
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(3), stderr);
            Assert.That(stderr, Does.Contain("broker unavailable"));
        });
        scratch.AssertNothingAtDestination();
    }

    [Test]
    public async Task Model_decrypt_broker_without_a_key_id_is_a_usage_error()
    {
        using var scratch = new NodeScratch(("w.bin", 10));
        var (exit, _, stderr) = await CliRunner.RunAsync("model", "decrypt", scratch.Encrypted, "--broker", "https://broker.example", "--out", scratch.Destination);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("--broker needs --key-id"));
        });
    }
}

[TestFixture]
public sealed class Progress_lines
{
    [Test]
    public void A_JSON_line_has_bytes_total_rate_eta_and_file_and_escapes_the_file_name()
    {
        var line = JsonNode.Parse(ProgressDisplay.JsonLine(512, 2048, 1000.4, 1.55, "dir/\"odd\".bin"))!.AsObject();
        Assert.Multiple(() =>
        {
            Assert.That((long)line["bytes"]!, Is.EqualTo(512));
            Assert.That((long)line["total"]!, Is.EqualTo(2048));
            Assert.That((double)line["bytes_per_second"]!, Is.EqualTo(1000));
            Assert.That((double)line["eta_seconds"]!, Is.EqualTo(1.6).Within(0.05));
            Assert.That((string)line["file"]!, Is.EqualTo("dir/\"odd\".bin"));
        });
    }

    [Test]
    public void An_unknown_time_left_is_null_in_JSON_and_dashes_on_the_bar()
    {
        Assert.Multiple(() =>
        {
            Assert.That(JsonNode.Parse(ProgressDisplay.JsonLine(0, 10, 0, null, null))!["eta_seconds"], Is.Null);
            Assert.That(ProgressDisplay.BarLine(0, 10, 0, null, null), Does.Contain("--:-- left"));
        });
    }

    [Test]
    public void The_bar_shows_fraction_sizes_rate_and_time_left()
    {
        var bar = ProgressDisplay.BarLine(1L << 30, 2L << 30, 512 << 20, 65, "model.safetensors", width: 10);
        Assert.That(bar, Is.EqualTo("[#####.....]  50.0%  1.00 GiB / 2.00 GiB  512.0 MiB/s  1:05 left  model.safetensors"));
    }
}
