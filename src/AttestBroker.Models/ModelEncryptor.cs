using System.Security.Cryptography;

namespace AttestBroker.Models;

/// <summary>Encrypts a model directory (weights shards, tokenizer, config) into an encrypted model directory with a manifest.</summary>
public static class ModelEncryptor
{
    /// <summary>
    /// Encrypts every regular file under <paramref name="sourceDirectory"/> (symbolic links are refused) into
    /// <paramref name="outputDirectory"/> (which must not exist or be empty): PATH.menc per file, manifest.json, and
    /// manifest.json.sig when <paramref name="signingKey"/> is given. Each file gets a fresh salt and nonce prefix.
    /// The caller keeps ownership of <paramref name="key"/>. Every file's digest tree uses <paramref name="treeHash"/>.
    /// </summary>
    public static async Task<ModelManifest> EncryptDirectoryAsync(string sourceDirectory, string outputDirectory, ModelKey key, string keyId, ECDsa? signingKey = null, int segmentSize = ModelFileHeader.DefaultSegmentSize, CiphertextTreeHash treeHash = CiphertextTreeHash.Blake3, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sourceDirectory);
        ArgumentNullException.ThrowIfNull(outputDirectory);
        ArgumentNullException.ThrowIfNull(key);
        ModelFileHeader.ValidateKeyId(keyId);
        ModelFileHeader.ValidateSegmentSize(segmentSize);
        var source = Path.GetFullPath(sourceDirectory);
        if (!Directory.Exists(source))
        {
            throw new ModelException(ModelError.SourceUnavailable, $"model directory {sourceDirectory} does not exist");
        }

        var output = Path.GetFullPath(outputDirectory);
        if (output == source || output.StartsWith(source + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ModelException(ModelError.DestinationUnsafe, "output directory must not be inside the model directory");
        }

        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
        {
            throw new ModelException(ModelError.DestinationUnsafe, $"output directory {outputDirectory} is not empty");
        }

        var files = CollectFiles(source);
        Directory.CreateDirectory(output);
        var entries = new List<ManifestEntry>(files.Count);
        foreach (var relative in files)
        {
            var plainPath = Path.Combine(source, relative.Replace('/', Path.DirectorySeparatorChar));
            var cipherPath = Path.Combine(output, (relative + ModelManifest.CiphertextSuffix).Replace('/', Path.DirectorySeparatorChar));
            Directory.CreateDirectory(Path.GetDirectoryName(cipherPath)!);
            var input = new FileStream(plainPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            await using (input.ConfigureAwait(false))
            {
                var length = input.Length;
                var cipherStream = new FileStream(cipherPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None);
                await using (cipherStream.ConfigureAwait(false))
                {
                    var digest = await ModelFileEncryptor.EncryptAsync(input, length, cipherStream, key, keyId, segmentSize, treeHash, cancellationToken).ConfigureAwait(false);
                    entries.Add(new ManifestEntry(relative, length, treeHash, digest));
                }
            }
        }

        var manifest = new ModelManifest(keyId, segmentSize, entries);
        var json = manifest.ToJson();
        await File.WriteAllBytesAsync(Path.Combine(output, ModelManifest.FileName), json, cancellationToken).ConfigureAwait(false);
        if (signingKey is not null)
        {
            await File.WriteAllTextAsync(Path.Combine(output, ModelManifest.SignatureFileName), ManifestSigning.Sign(json, signingKey), cancellationToken).ConfigureAwait(false);
        }

        return manifest;
    }

    private static List<string> CollectFiles(string source)
    {
        var result = new List<string>();
        var pending = new Stack<string>();
        pending.Push(source);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos())
            {
                if (entry.LinkTarget is not null)
                {
                    throw new ModelException(ModelError.SourceInvalid, $"{entry.FullName} is a symbolic link; copy the target into the model directory");
                }

                if (entry is DirectoryInfo)
                {
                    pending.Push(entry.FullName);
                }
                else if (entry is FileInfo)
                {
                    var relative = Path.GetRelativePath(source, entry.FullName).Replace(Path.DirectorySeparatorChar, '/');
                    ModelManifest.ValidatePath(relative);
                    result.Add(relative);
                }
            }
        }

        result.Sort(StringComparer.Ordinal);
        return result;
    }
}
