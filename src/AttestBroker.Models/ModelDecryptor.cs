using System.Security.Cryptography;

namespace AttestBroker.Models;

/// <summary>Settings for <see cref="ModelDecryptor.DecryptAsync"/>.</summary>
public sealed class ModelDecryptionOptions
{
    /// <summary>The publisher's key; when set, manifest.json.sig must exist and verify. When null the signature is not checked (see <see cref="ModelDecryptionResult.SignatureChecked"/>).</summary>
    public System.Security.Cryptography.ECDsa? PublisherKey { get; init; }

    /// <summary>Write to a disk-backed destination (not tmpfs/ramfs). Off by default.</summary>
    public bool AllowDisk { get; init; }

    /// <summary>When set, the manifest's key id must equal this.</summary>
    public string? ExpectedKeyId { get; init; }

    /// <summary>Decrypting threads; default: processor count.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;
}

/// <summary>What was decrypted.</summary>
public sealed record ModelDecryptionResult(int Files, long PlaintextBytes, string KeyId, bool SignatureChecked);

/// <summary>
/// Decrypts an encrypted model directory into a destination directory through a bounded parallel pipeline:
/// worker threads (each with its own AesGcm and one segment buffer) claim segments, read them, hash the ciphertext
/// in segment order by turn, then decrypt in place and write at the segment's offset into a temporary file.
/// Memory is one segment per worker whatever the model's size. A file is renamed to its final name only after every
/// segment, its length and its SHA-256 verified; on any failure every file of this run is deleted.
/// </summary>
public static class ModelDecryptor
{
    /// <summary>
    /// Decrypts every file listed in the source's manifest into <paramref name="destination"/>.
    /// Takes ownership of <paramref name="key"/> and zeroes it when done. Throws <see cref="ModelException"/> with the reason.
    /// </summary>
    public static async Task<ModelDecryptionResult> DecryptAsync(IModelSource source, ModelKey key, string destination, ModelDecryptionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(destination);
        options ??= new ModelDecryptionOptions();
        using (key)
        {
            var root = Path.GetFullPath(destination);
            MemoryVolume.Require(root, options.AllowDisk);

            var manifestBytes = await source.ReadSmallFileAsync(ModelManifest.FileName, ModelManifest.MaxManifestBytes, cancellationToken).ConfigureAwait(false)
                ?? throw new ModelException(ModelError.SourceUnavailable, $"{ModelManifest.FileName} is missing from {source.Description}");
            var signatureChecked = false;
            if (options.PublisherKey is not null)
            {
                var signature = await source.ReadSmallFileAsync(ModelManifest.SignatureFileName, 4096, cancellationToken).ConfigureAwait(false)
                    ?? throw new ModelException(ModelError.ManifestSignatureMissing, $"{ModelManifest.SignatureFileName} is missing but a publisher key is configured");
                ManifestSigning.Verify(manifestBytes, signature, options.PublisherKey);
                signatureChecked = true;
            }

            var manifest = ModelManifest.Parse(manifestBytes);
            if (options.ExpectedKeyId is not null && !string.Equals(options.ExpectedKeyId, manifest.KeyId, StringComparison.Ordinal))
            {
                throw new ModelException(ModelError.KeyIdMismatch, $"model is encrypted under key id '{manifest.KeyId}', expected '{options.ExpectedKeyId}'");
            }

            // Fail before decrypting anything when the volume cannot hold the model (no fallocate: on tmpfs it zeroes every page first).
            var needed = manifest.Files.Sum(f => f.Size);
            var available = MemoryVolume.AvailableBytes(root);
            if (available >= 0 && available < needed)
            {
                throw new ModelException(ModelError.DestinationTooSmall, $"destination {root} has {available} bytes free, the model needs {needed}");
            }

            var run = new Run(root, manifest, key, Math.Clamp(options.Workers, 1, 64));
            try
            {
                long total = 0;
                foreach (var entry in manifest.Files)
                {
                    await run.DecryptFileAsync(source, entry, cancellationToken).ConfigureAwait(false);
                    total += entry.Size;
                }

                run.Commit();
                return new ModelDecryptionResult(manifest.Files.Count, total, manifest.KeyId, signatureChecked);
            }
            finally
            {
                run.Dispose();
            }
        }
    }

    /// <summary>One decryption run: buffers, created files and directories, cleanup.</summary>
    private sealed class Run : IDisposable
    {
        private readonly string _root;
        private readonly ModelManifest _manifest;
        private readonly ModelKey _key;
        private readonly int _workers;
        private const int BatchBytes = 4 << 20;

        private readonly byte[][] _buffers;
        private readonly int _segmentsPerBatch;
        private readonly List<string> _created = [];
        private readonly List<string> _createdDirectories = [];
        private string? _pendingTemp;
        private bool _committed;

        public Run(string root, ModelManifest manifest, ModelKey key, int workers)
        {
            _root = root;
            _manifest = manifest;
            _key = key;
            _workers = workers;
            _segmentsPerBatch = Math.Max(1, BatchBytes / manifest.SegmentSize);
            _buffers = new byte[workers][];
            for (var i = 0; i < workers; i++)
            {
                _buffers[i] = GC.AllocateUninitializedArray<byte>(_segmentsPerBatch * (manifest.SegmentSize + ModelFileHeader.SegmentTagLength), pinned: true);
            }
        }

        public async Task DecryptFileAsync(IModelSource source, ManifestEntry entry, CancellationToken cancellationToken)
        {
            var headerLength = ModelFileHeader.HeaderLengthFor(_manifest.KeyId);
            var expectedLength = ModelFileHeader.CiphertextLengthFor(headerLength, entry.Size, _manifest.SegmentSize);
            var finalPath = PrepareDestination(entry.Path);
            var reader = await source.OpenCiphertextAsync(ModelManifest.CiphertextPath(entry), expectedLength, cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var headerBytes = new byte[headerLength];
                await reader.ReadExactlyAsync(0, headerBytes, cancellationToken).ConfigureAwait(false);
                hash.AppendData(headerBytes);
                using var file = EncryptedModelFile.Open(headerBytes, _key, _manifest.KeyId);
                var header = file.Header;
                if (header.SegmentSize != _manifest.SegmentSize)
                {
                    throw new ModelException(ModelError.SegmentSizeOutOfRange, $"{entry.Path}: header segment size {header.SegmentSize} differs from the manifest's {_manifest.SegmentSize}");
                }

                if (header.PlaintextLength != entry.Size)
                {
                    throw new ModelException(ModelError.PlaintextSizeMismatch, $"{entry.Path}: header says {header.PlaintextLength} bytes, manifest says {entry.Size}");
                }

                var temp = Path.Combine(Path.GetDirectoryName(finalPath)!, "." + Path.GetFileName(finalPath) + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)) + ".partial");
                _pendingTemp = temp;
                using (var output = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None))
                {
                    await PumpAsync(file, reader, hash, output, entry.Path, cancellationToken).ConfigureAwait(false);
                }

                var digest = hash.GetHashAndReset();
                if (!CryptographicOperations.FixedTimeEquals(digest, entry.CiphertextSha256))
                {
                    throw new ModelException(ModelError.CiphertextDigestMismatch, $"{entry.Path}: SHA-256 of the ciphertext differs from the manifest's");
                }

                File.Move(temp, finalPath, overwrite: false);
                _created.Add(finalPath);
                _pendingTemp = null;
            }
        }

        public void Commit() => _committed = true;

        public void Dispose()
        {
            foreach (var buffer in _buffers)
            {
                CryptographicOperations.ZeroMemory(buffer);
            }

            if (_committed)
            {
                return;
            }

            // Fail closed: no plaintext of this run stays behind.
            if (_pendingTemp is not null)
            {
                TryDelete(_pendingTemp);
            }

            foreach (var f in _created)
            {
                TryDelete(f);
            }

            for (var i = _createdDirectories.Count - 1; i >= 0; i--)
            {
                try
                {
                    Directory.Delete(_createdDirectories[i], recursive: false);
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
        }

        private static void TryDelete(string path)
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        /// <summary>Creates the parent directories (refusing symbolic links on the way) and checks the target does not exist.</summary>
        private string PrepareDestination(string relativePath)
        {
            if (!Directory.Exists(_root))
            {
                CreateDirectory(_root);
            }

            if (new DirectoryInfo(_root).LinkTarget is not null)
            {
                throw new ModelException(ModelError.DestinationUnsafe, $"destination {_root} is a symbolic link");
            }

            var parts = relativePath.Split('/');
            var current = _root;
            for (var i = 0; i < parts.Length - 1; i++)
            {
                current = Path.Combine(current, parts[i]);
                var info = new DirectoryInfo(current);
                if (info.LinkTarget is not null || File.Exists(current))
                {
                    throw new ModelException(ModelError.DestinationUnsafe, $"destination path {current} is a symbolic link or a file");
                }

                if (!info.Exists)
                {
                    CreateDirectory(current);
                }
            }

            var final = Path.Combine(current, parts[^1]);
            if (File.Exists(final) || Directory.Exists(final) || new FileInfo(final).LinkTarget is not null)
            {
                throw new ModelException(ModelError.DestinationUnsafe, $"destination {final} already exists");
            }

            return final;
        }

        private void CreateDirectory(string path)
        {
            var missing = new Stack<string>();
            for (var d = new DirectoryInfo(path); d is not null && !d.Exists; d = d.Parent)
            {
                missing.Push(d.FullName);
            }

            foreach (var d in missing)
            {
                Directory.CreateDirectory(d);
                _createdDirectories.Add(d);
            }
        }

        /// <summary>
        /// Moves one file through the pipeline. Each worker thread claims the next segment index, reads it into its own
        /// buffer (in parallel with the others for a local file), then waits for its turn to feed the ciphertext to
        /// SHA-256 in segment order (for a sequential HTTP stream the read happens in the turn too), passes the turn on,
        /// and decrypts in place and writes the plaintext at the segment's offset while the next worker hashes. So
        /// hashing, which must be sequential, overlaps with reading, decrypting and writing, and memory is one segment per
        /// worker whatever the model's size. The only coordination is a counter and a monitor for the turn.
        /// </summary>
        private Task PumpAsync(EncryptedModelFile file, ICiphertextReader reader, IncrementalHash hash, Microsoft.Win32.SafeHandles.SafeFileHandle output, string name, CancellationToken cancellationToken)
        {
            var header = file.Header;
            var positional = reader as IPositionalCiphertextReader;
            var segments = header.SegmentCount;
            var gate = new object();
            long next = -1;
            long turn = 0;
            Exception? failure = null;
            var registration = cancellationToken.Register(() => Fail(new OperationCanceledException(cancellationToken)));

            void Fail(Exception ex)
            {
                lock (gate)
                {
                    failure ??= ex;
                    Monitor.PulseAll(gate);
                }
            }

            // Workers claim batches of consecutive segments (about 4 MiB), so turns change hands a few hundred times
            // per GiB rather than once per segment: on a busy machine every hand-off waits for the scheduler.
            var perBatch = _segmentsPerBatch;
            var stride = header.SegmentSize + (long)ModelFileHeader.SegmentTagLength;
            var batches = ((segments - 1) / perBatch) + 1;

            void Work(byte[] buffer)
            {
                try
                {
                    using var cipher = file.CreateCipher();
                    while (true)
                    {
                        var b = Interlocked.Increment(ref next);
                        if (b >= batches || Volatile.Read(ref failure) is not null)
                        {
                            return;
                        }

                        var first = b * perBatch;
                        var last = Math.Min(segments, first + perBatch) - 1;
                        var offset = file.SegmentOffset(first);
                        var length = (int)(file.SegmentOffset(last) - offset) + file.SegmentCiphertextLength(last);
                        var range = buffer.AsSpan(0, length);
                        positional?.ReadExactlyAt(offset, range);
                        lock (gate)
                        {
                            while (turn != b && failure is null)
                            {
                                Monitor.Wait(gate);
                            }

                            if (failure is not null)
                            {
                                return;
                            }
                        }

                        if (positional is null)
                        {
                            // Segment by segment, so that a stream cut mid-way resumes at the start of the segment being read.
                            for (var i = first; i <= last; i++)
                            {
                                var at = (int)((i - first) * stride);
                                reader.ReadExactlyAsync(file.SegmentOffset(i), buffer.AsMemory(at, file.SegmentCiphertextLength(i)), cancellationToken).AsTask().GetAwaiter().GetResult();
                            }
                        }

                        hash.AppendData(range);
                        lock (gate)
                        {
                            turn = b + 1;
                            Monitor.PulseAll(gate);
                        }

                        for (var i = first; i <= last; i++)
                        {
                            var segment = range.Slice((int)((i - first) * stride), file.SegmentCiphertextLength(i));
                            var n = cipher.Decrypt(i, segment, segment);
                            RandomAccess.Write(output, segment[..n], i * (long)header.SegmentSize);
                        }
                    }
                }
                catch (Exception ex)
                {
                    Fail(ex);
                }
            }

            var count = (int)Math.Min(_workers, batches);
            var running = count;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            for (var w = 0; w < count; w++)
            {
                var buffer = _buffers[w];
                var thread = new Thread(() =>
                {
                    Work(buffer);
                    if (Interlocked.Decrement(ref running) == 0)
                    {
                        registration.Dispose();
                        if (failure is IOException io and not FileNotFoundException)
                        {
                            done.SetException(new IOException($"{name}: {io.Message}", io));
                        }
                        else if (failure is not null)
                        {
                            done.SetException(failure);
                        }
                        else
                        {
                            done.SetResult();
                        }
                    }
                })
                {
                    IsBackground = true,
                    Name = "model-decrypt-" + w,
                };
                thread.Start();
            }

            return done.Task;
        }
    }
}
