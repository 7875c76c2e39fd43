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

    /// <summary>Counters the decryptor updates as it goes (bytes verified and written, total, current file); read them from any thread.</summary>
    public DecryptionProgress? Progress { get; init; }
}

/// <summary>
/// Progress of a decryption, updated by the worker threads with one interlocked add per batch and read by whoever
/// displays it (a timer, a progress bar). Plaintext bytes count once their segment authenticated and was written.
/// </summary>
public sealed class DecryptionProgress
{
    private long _done;
    private long _total = -1;
    private string? _file;

    /// <summary>Plaintext bytes decrypted, authenticated and written so far.</summary>
    public long BytesDone => Interlocked.Read(ref _done);

    /// <summary>Plaintext bytes of the whole model; -1 until the manifest is read.</summary>
    public long TotalBytes => Interlocked.Read(ref _total);

    /// <summary>The manifest path of the file being decrypted.</summary>
    public string? CurrentFile => Volatile.Read(ref _file);

    internal void Start(long total) => Interlocked.Exchange(ref _total, total);

    internal void Add(long bytes) => Interlocked.Add(ref _done, bytes);

    internal void SetFile(string path) => Volatile.Write(ref _file, path);
}

/// <summary>What was decrypted.</summary>
public sealed record ModelDecryptionResult(int Files, long PlaintextBytes, string KeyId, bool SignatureChecked);

/// <summary>
/// Decrypts an encrypted model directory into a destination directory through a bounded parallel pipeline:
/// worker threads (each with its own AesGcm and one batch buffer) claim batches of segments, read them with one
/// positional read, hash each segment (a leaf of the digest tree), decrypt it in place and write the plaintext at its
/// offset into a temporary file with one gathered write, one worker at a time. Memory is one batch per worker whatever
/// the model's size. A file is renamed to its final name only after every segment, its length and its digest tree root
/// verified; on any failure every file of this run is deleted.
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

            options.Progress?.Start(needed);
            var run = new Run(root, manifest, key, Math.Clamp(options.Workers, 1, 64), options.Progress);
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

        /// <summary>How many batches the fastest worker may be ahead of the oldest batch whose leaves are not folded yet.</summary>
        private const int RingBatches = 64;

        private readonly byte[][] _buffers;
        private readonly int _segmentsPerBatch;
        private readonly List<string> _created = [];
        private readonly List<string> _createdDirectories = [];
        private readonly DecryptionProgress? _progress;
        private string? _pendingTemp;
        private bool _committed;

        public Run(string root, ModelManifest manifest, ModelKey key, int workers, DecryptionProgress? progress)
        {
            _progress = progress;
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
                var headerBytes = new byte[headerLength];
                await reader.ReadExactlyAsync(0, headerBytes, cancellationToken).ConfigureAwait(false);
                using var tree = CiphertextDigestTree.StartRoot(entry.TreeHash, headerBytes);
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

                _progress?.SetFile(entry.Path);
                var temp = Path.Combine(Path.GetDirectoryName(finalPath)!, "." + Path.GetFileName(finalPath) + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)) + ".partial");
                _pendingTemp = temp;
                using (var output = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None))
                {
                    await PumpAsync(file, reader, tree, output, entry.Path, cancellationToken).ConfigureAwait(false);
                }

                var root = tree.Finish();
                if (!CryptographicOperations.FixedTimeEquals(root, entry.CiphertextTreeRoot))
                {
                    throw new ModelException(ModelError.CiphertextDigestMismatch, $"{entry.Path}: the ciphertext digest tree root differs from the manifest's");
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
        /// Moves one file through the pipeline. Each worker thread claims the next batch of consecutive segments, reads it
        /// into its own buffer (one positional read, in parallel with the other workers, for a local file; in batch order
        /// for a sequential HTTP stream), hashes each segment into its leaf of the digest tree, decrypts it in place and
        /// writes the batch's plaintext at its offset with one gathered write, taking turns with the other workers. The
        /// leaves are folded into the root in order through a small ring: a worker may run at most <see cref="RingBatches"/>
        /// batches ahead of the oldest batch not yet folded, so memory stays bounded whatever the file's size. The only
        /// coordination is a monitor taken a few times per batch (about 4 MiB) and the writers' turn.
        /// </summary>
        private Task PumpAsync(EncryptedModelFile file, ICiphertextReader reader, CiphertextDigestTree.Root tree, Microsoft.Win32.SafeHandles.SafeFileHandle output, string name, CancellationToken cancellationToken)
        {
            var header = file.Header;
            var positional = reader as IPositionalCiphertextReader;
            var segments = header.SegmentCount;
            var gate = new object();
            var writeGate = new object();
            long next = 0;
            long turn = 0;
            long folded = 0;
            Exception? failure = null;
            var perBatch = _segmentsPerBatch;
            var stride = header.SegmentSize + (long)ModelFileHeader.SegmentTagLength;
            var batches = ((segments - 1) / perBatch) + 1;
            var leafBytes = perBatch * CiphertextDigestTree.DigestLength;
            var ring = new byte[RingBatches * leafBytes];
            var ready = new bool[RingBatches];
            var registration = cancellationToken.Register(() => Fail(new OperationCanceledException(cancellationToken)));

            void Fail(Exception ex)
            {
                lock (gate)
                {
                    failure ??= ex;
                    Monitor.PulseAll(gate);
                }
            }

            void Work(byte[] buffer)
            {
                try
                {
                    using var cipher = file.CreateCipher();
                    var leaves = new byte[leafBytes];
                    var pieces = new ReadOnlyMemory<byte>[perBatch];
                    while (true)
                    {
                        long b;
                        lock (gate)
                        {
                            while (failure is null && next < batches && next >= folded + RingBatches)
                            {
                                Monitor.Wait(gate);
                            }

                            if (failure is not null || next >= batches)
                            {
                                return;
                            }

                            b = next++;
                        }

                        var first = b * perBatch;
                        var last = Math.Min(segments, first + perBatch) - 1;
                        var count = (int)(last - first + 1);
                        var offset = file.SegmentOffset(first);
                        var length = (int)(file.SegmentOffset(last) - offset) + file.SegmentCiphertextLength(last);
                        if (positional is not null)
                        {
                            positional.ReadExactlyAt(offset, buffer.AsSpan(0, length));
                        }
                        else
                        {
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

                            // Segment by segment, so that a stream cut mid-way resumes at the start of the segment being read.
                            for (var i = first; i <= last; i++)
                            {
                                var at = (int)((i - first) * stride);
                                reader.ReadExactlyAsync(file.SegmentOffset(i), buffer.AsMemory(at, file.SegmentCiphertextLength(i)), cancellationToken).AsTask().GetAwaiter().GetResult();
                            }

                            lock (gate)
                            {
                                turn = b + 1;
                                Monitor.PulseAll(gate);
                            }
                        }

                        long plaintextBytes = 0;
                        for (var k = 0; k < count; k++)
                        {
                            var i = first + k;
                            var segment = buffer.AsSpan((int)(k * stride), file.SegmentCiphertextLength(i));
                            CiphertextDigestTree.HashLeaf(tree.Hash, segment, leaves.AsSpan(k * CiphertextDigestTree.DigestLength, CiphertextDigestTree.DigestLength));
                            var n = cipher.Decrypt(i, segment, segment);
                            pieces[k] = buffer.AsMemory((int)(k * stride), n);
                            plaintextBytes += n;
                        }

                        // One writer at a time: the kernel serializes writes to one file on its inode lock anyway, and a
                        // thread waiting there spins on the CPU the other worker needs for hashing and decrypting.
                        lock (writeGate)
                        {
                            if (count == perBatch)
                            {
                                RandomAccess.Write(output, pieces, first * header.SegmentSize);
                            }
                            else
                            {
                                RandomAccess.Write(output, pieces[..count], first * header.SegmentSize);
                            }
                        }

                        lock (gate)
                        {
                            var slot = (int)(b % RingBatches);
                            leaves.AsSpan(0, count * CiphertextDigestTree.DigestLength).CopyTo(ring.AsSpan(slot * leafBytes));
                            ready[slot] = true;
                            while (folded < batches && ready[(int)(folded % RingBatches)])
                            {
                                var s = (int)(folded % RingBatches);
                                var n = folded == batches - 1 ? (int)(segments - (folded * perBatch)) : perBatch;
                                tree.Append(ring.AsSpan(s * leafBytes, n * CiphertextDigestTree.DigestLength));
                                ready[s] = false;
                                folded++;
                            }

                            Monitor.PulseAll(gate);
                        }

                        _progress?.Add(plaintextBytes);
                    }
                }
                catch (Exception ex)
                {
                    Fail(ex);
                }
            }

            var workers = (int)Math.Min(_workers, batches);
            var running = workers;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            for (var w = 0; w < workers; w++)
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
                        else if (folded != batches)
                        {
                            done.SetException(new InvalidOperationException($"{name}: {folded} of {batches} batches folded into the digest tree"));
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
