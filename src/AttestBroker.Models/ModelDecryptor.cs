using System.Security.Cryptography;
using System.Threading.Channels;

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
/// one reader (reads each segment into a fixed pool of buffers and hashes the ciphertext in order) feeds a bounded
/// channel; workers, each with its own AesGcm, decrypt in place and write at the segment's offset into a temporary
/// file. Memory is (workers + 2) segment buffers whatever the model's size. A file is renamed to its final name only
/// after every segment, its length and its SHA-256 verified; on any failure every file of this run is deleted.
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

    /// <summary>A ciphertext buffer travelling reader -> (worker, hasher) -> free list; released when both are done with it.</summary>
    private sealed class Slot(int size)
    {
        public readonly byte[] Buffer = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        public readonly SemaphoreSlim ReadDone = new(0, 1);
        public long Index;
        public long Offset;
        public int Length;
        public int Pending;
    }

    /// <summary>One decryption run: buffers, created files and directories, cleanup.</summary>
    private sealed class Run : IDisposable
    {
        private readonly string _root;
        private readonly ModelManifest _manifest;
        private readonly ModelKey _key;
        private readonly int _workers;
        private readonly Slot[] _slots;
        private readonly byte[][] _plain;
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
            _slots = new Slot[(2 * workers) + 2];
            for (var i = 0; i < _slots.Length; i++)
            {
                _slots[i] = new Slot(manifest.SegmentSize + ModelFileHeader.SegmentTagLength);
            }

            _plain = new byte[workers][];
            for (var i = 0; i < workers; i++)
            {
                _plain[i] = GC.AllocateUninitializedArray<byte>(manifest.SegmentSize, pinned: true);
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
            foreach (var slot in _slots)
            {
                CryptographicOperations.ZeroMemory(slot.Buffer);
                slot.ReadDone.Dispose();
            }

            foreach (var plain in _plain)
            {
                CryptographicOperations.ZeroMemory(plain);
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
        /// Moves one file through the pipeline. The dispatcher hands out ciphertext slots in segment order. With a local
        /// source each worker reads its own segment (positional read); with a sequential source (HTTP) the dispatcher reads.
        /// A hasher thread feeds the ciphertext to SHA-256 in segment order while workers decrypt it (out of place, into
        /// their own plaintext buffer) and write the plaintext at the segment's offset. A slot is reused only when both
        /// the hasher and its worker are done with it, so memory is fixed at (2 x workers + 2) segments + workers segments.
        /// </summary>
        private async Task PumpAsync(EncryptedModelFile file, ICiphertextReader reader, IncrementalHash hash, Microsoft.Win32.SafeHandles.SafeFileHandle output, string name, CancellationToken cancellationToken)
        {
            var header = file.Header;
            var positional = reader as IPositionalCiphertextReader;
            var free = Channel.CreateBounded<Slot>(new BoundedChannelOptions(_slots.Length) { SingleWriter = false, SingleReader = true });
            var work = Channel.CreateBounded<Slot>(new BoundedChannelOptions(_slots.Length) { SingleWriter = true, SingleReader = false });
            var toHash = Channel.CreateBounded<Slot>(new BoundedChannelOptions(_slots.Length) { SingleWriter = true, SingleReader = true });
            foreach (var s in _slots)
            {
                free.Writer.TryWrite(s);
            }

            using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var token = abort.Token;
            Exception? failure = null;
            void Fail(Exception ex)
            {
                Interlocked.CompareExchange(ref failure, ex, null);
                abort.Cancel();
            }

            void Release(Slot slot)
            {
                if (Interlocked.Decrement(ref slot.Pending) == 0)
                {
                    free.Writer.TryWrite(slot);
                }
            }

            static bool WaitToRead(ChannelReader<Slot> channel, CancellationToken token)
            {
                var wait = channel.WaitToReadAsync(token);
                return wait.IsCompletedSuccessfully ? wait.Result : wait.AsTask().GetAwaiter().GetResult();
            }

            var workerCount = (int)Math.Min(_workers, header.SegmentCount);
            var threads = new Task[workerCount + 1];
            for (var w = 0; w < workerCount; w++)
            {
                var plain = _plain[w];
                threads[w] = Task.Factory.StartNew(
                    () =>
                    {
                        try
                        {
                            using var cipher = file.CreateCipher();
                            while (!token.IsCancellationRequested)
                            {
                                if (!work.Reader.TryRead(out var slot))
                                {
                                    if (!WaitToRead(work.Reader, token))
                                    {
                                        return;
                                    }

                                    continue;
                                }

                                var ciphertext = slot.Buffer.AsSpan(0, slot.Length);
                                if (positional is not null)
                                {
                                    positional.ReadExactlyAt(slot.Offset, ciphertext);
                                    slot.ReadDone.Release();
                                }

                                var n = cipher.Decrypt(slot.Index, ciphertext, plain);
                                RandomAccess.Write(output, plain.AsSpan(0, n), slot.Index * (long)header.SegmentSize);
                                Release(slot);
                            }
                        }
                        catch (OperationCanceledException) when (token.IsCancellationRequested)
                        {
                        }
                        catch (Exception ex)
                        {
                            Fail(ex);
                        }
                    },
                    CancellationToken.None,
                    TaskCreationOptions.LongRunning,
                    TaskScheduler.Default);
            }

            threads[workerCount] = Task.Factory.StartNew(
                () =>
                {
                    try
                    {
                        while (!token.IsCancellationRequested)
                        {
                            if (!toHash.Reader.TryRead(out var slot))
                            {
                                if (!WaitToRead(toHash.Reader, token))
                                {
                                    return;
                                }

                                continue;
                            }

                            slot.ReadDone.Wait(token);
                            hash.AppendData(slot.Buffer, 0, slot.Length);
                            Release(slot);
                        }
                    }
                    catch (OperationCanceledException) when (token.IsCancellationRequested)
                    {
                    }
                    catch (Exception ex)
                    {
                        Fail(ex);
                    }
                },
                CancellationToken.None,
                TaskCreationOptions.LongRunning,
                TaskScheduler.Default);

            try
            {
                for (long i = 0; i < header.SegmentCount; i++)
                {
                    var slot = await free.Reader.ReadAsync(token).ConfigureAwait(false);
                    slot.Index = i;
                    slot.Offset = file.SegmentOffset(i);
                    slot.Length = file.SegmentCiphertextLength(i);
                    slot.Pending = 2;
                    if (positional is null)
                    {
                        await reader.ReadExactlyAsync(slot.Offset, slot.Buffer.AsMemory(0, slot.Length), token).ConfigureAwait(false);
                        slot.ReadDone.Release();
                    }

                    toHash.Writer.TryWrite(slot);
                    await work.Writer.WriteAsync(slot, token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested && failure is not null)
            {
            }
            catch (Exception ex)
            {
                Fail(ex);
            }
            finally
            {
                work.Writer.TryComplete();
                toHash.Writer.TryComplete();
                await Task.WhenAll(threads).ConfigureAwait(false);
            }

            if (failure is not null)
            {
                if (failure is IOException io and not FileNotFoundException)
                {
                    throw new IOException($"{name}: {io.Message}", io);
                }

                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
            }

            cancellationToken.ThrowIfCancellationRequested();
        }
    }
}
