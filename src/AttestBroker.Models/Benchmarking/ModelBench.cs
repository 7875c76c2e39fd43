using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace AttestBroker.Models.Benchmarking;

/// <summary>Settings of <see cref="ModelBench.RunAsync"/>.</summary>
public sealed class ModelBenchOptions
{
    /// <summary>Plaintext bytes.</summary>
    public long Size { get; init; } = 2L << 30;

    /// <summary>Memory-backed directory for the plaintext and every decrypted output.</summary>
    public string MemoryDirectory { get; init; } = "/dev/shm";

    /// <summary>Directory for the ciphertexts (ours and age's), normally on disk.</summary>
    public string CipherDirectory { get; init; } = Path.GetTempPath();

    /// <summary>Timed runs per contender; the best time is reported.</summary>
    public int Runs { get; init; } = 3;

    /// <summary>The digest tree hash of the model decrypted (the encrypt default unless set).</summary>
    public CiphertextTreeHash TreeHash { get; init; } = CiphertextTreeHash.Blake3;

    /// <summary>The executable whose <c>model decrypt</c> is timed, as a child process exactly as a node would run it: <c>attestbroker-node</c> (native) or <c>attestbroker</c>.</summary>
    public required string DecryptorExecutable { get; init; }

    /// <summary>Arguments before "model decrypt" (the dll path when the executable is dotnet).</summary>
    public IReadOnlyList<string> DecryptorPrefixArguments { get; init; } = [];
}

/// <summary>The measured figures.</summary>
public sealed record ModelBenchReport(
    bool Succeeded,
    long Size,
    TimeSpan Ours,
    TimeSpan Cat,
    TimeSpan? Age,
    double AesGcmSingleCoreBytesPerSecond,
    double TreeHashSingleCoreBytesPerSecond,
    long OursPeakRssBytes)
{
    /// <summary>The digest tree hash of the model decrypted, whose one-core rate is <see cref="TreeHashSingleCoreBytesPerSecond"/>.</summary>
    public CiphertextTreeHash TreeHash { get; init; } = CiphertextTreeHash.Blake3;

    /// <summary>One core's rate of the other tree hash, for comparison; null where not measured.</summary>
    public double? OtherTreeHashSingleCoreBytesPerSecond { get; init; }

    /// <summary>The file name of the executable whose <c>model decrypt</c> was timed (attestbroker-node or attestbroker).</summary>
    public string Decryptor { get; init; } = "attestbroker";

    /// <summary>getrusage(RUSAGE_CHILDREN) ru_maxrss after our first decrypt, in bytes (-1 unknown): an upper bound that can include the bench's own memory.</summary>
    public long ChildrenMaxRssBytes { get; init; } = -1;

    /// <summary>Least user + system CPU time of our decrypt over the runs.</summary>
    public TimeSpan OursCpu { get; init; }

    /// <summary>Least CPU time of cat.</summary>
    public TimeSpan CatCpu { get; init; }

    /// <summary>Least CPU time of age -d, when age ran.</summary>
    public TimeSpan? AgeCpu { get; init; }

    /// <summary>Least wall time of age -d into /dev/null (its decryption without the tmpfs writes), when age ran.</summary>
    public TimeSpan? AgeToNull { get; init; }

    /// <summary>Least CPU time of age -d into /dev/null, when age ran.</summary>
    public TimeSpan? AgeToNullCpu { get; init; }

    /// <summary>Least wall time of our decrypt (child, key over stdin) of a 1-byte model: process start-up and everything fixed.</summary>
    public TimeSpan StartupWall { get; init; }

    /// <summary>Least CPU time of that 1-byte decrypt.</summary>
    public TimeSpan StartupCpu { get; init; }

    /// <summary>Share of the machine's CPU time the hypervisor took (steal) while the contenders ran; null where unknown.</summary>
    public double? HostStealShare { get; init; }

    /// <summary>Processors the floor spreads the work over.</summary>
    public int Processors { get; init; } = 1;

    /// <summary><see cref="ModelBench.Floor"/> for this run: an estimate of the least wall time a decryptor doing our work could take here.</summary>
    public TimeSpan FloorWall { get; init; }

    /// <summary>The lowest ours / cat a decryptor doing our work could reach here, by the floor's estimate (floor / cat wall).</summary>
    public double BestOursOverCat => ModelBench.Ratio(FloorWall, Cat);

    /// <summary>The highest age / ours a decryptor doing our work could reach here, by the floor's estimate (age wall / floor), when age ran.</summary>
    public double? BestAgeOverOurs => Age is { } age ? ModelBench.Ratio(age, FloorWall) : null;

    /// <summary>
    /// The same, with age's writes priced like cat's: (age -d into /dev/null + cat CPU) / floor, when age ran. Every
    /// figure then comes from one state of the machine, where <see cref="BestAgeOverOurs"/> sets age's best wall time,
    /// whatever its pages cost in that run, against a floor priced with cat's.
    /// </summary>
    public double? AgeOverOursCeiling => AgeToNull is { } ageNull ? ModelBench.AgeRatioCeiling(ageNull, CatCpu, FloorWall) : null;
}

/// <summary>
/// Creates a plaintext model, encrypts it with this format and with age, then times (best of N) decrypting it into a
/// memory-backed directory with <c>attestbroker-node model decrypt</c> or <c>attestbroker model decrypt</c> (child process), <c>cat</c> of the plaintext, and
/// <c>age -d</c>; measures one core's AES-256-GCM, SHA-256 and BLAKE3 rates in-process; reports our child's peak RSS
/// (its VmHWM, sampled while it ran, in two untimed runs; see <c>RunChildAsync</c>). In the same run it times <c>age -d</c> into
/// /dev/null and our decrypt of a 1-byte model (start-up), and prints <see cref="Floor"/>: the least wall time any
/// decryptor doing our work could take here (an estimate), and the best ratios that leaves reachable. Before each timed contender it
/// settles the machine the same way (see <c>SettleAsync</c>), and each run prints its own ratios besides the best-of
/// ones. Everything it creates is deleted.
/// The benchmark's throwaway keys travel to the children over standard input, never through a file.
/// </summary>
public static partial class ModelBench
{
    private const int ChunkSize = 4 << 20;

    /// <summary>Target: our wall time at most this many times cat's (issue 5).</summary>
    public const double MaxOursOverCat = 1.15;

    /// <summary>Target: age -d's wall time at least this many times ours (issue 5).</summary>
    public const double MinAgeOverOurs = 2;

    /// <summary>Target: peak RSS of our decrypt (issue 5).</summary>
    public const long MaxPeakRssBytes = 64L << 20;

    /// <summary>
    /// The least wall time a decryptor doing our work could take on this machine, estimated from this run's rates:
    /// <c>startup + (size / hashRate + size / aesGcmRate + catCpu) / processors</c>, with the rate of the model's digest
    /// tree hash. Every byte is hashed and decrypted at one core's rates and copied in and out at cat's CPU cost (the
    /// read and the tmpfs write every contender pays), and the work spreads perfectly over every processor. Generous:
    /// the size is the plaintext's, leaving out the tags and headers the hash also covers. An estimate, not a proof: our
    /// 4 MiB reads and writes can cost a little less CPU than cat's 128 KiB ones (docs/performance.md has a run that
    /// beat it by 1 %, and why an earlier lower bound of cat's CPU time was dropped).
    /// </summary>
    public static TimeSpan Floor(long size, double hashBytesPerSecond, double aesGcmBytesPerSecond, TimeSpan catCpu, TimeSpan startup, int processors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        RequirePositiveRate(hashBytesPerSecond);
        RequirePositiveRate(aesGcmBytesPerSecond);
        ArgumentOutOfRangeException.ThrowIfLessThan(catCpu, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(startup, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(processors);
        var spread = ((size / hashBytesPerSecond) + (size / aesGcmBytesPerSecond) + catCpu.TotalSeconds) / processors;
        return TimeSpan.FromSeconds(startup.TotalSeconds + spread);
    }

    /// <summary>Whether ours / cat &lt;= <see cref="MaxOursOverCat"/> is within reach here: the floor itself must meet it.</summary>
    public static bool CatTargetWithinReach(TimeSpan floor, TimeSpan catWall) => floor.TotalSeconds <= MaxOursOverCat * catWall.TotalSeconds;

    /// <summary>Whether age / ours &gt;= <see cref="MinAgeOverOurs"/> is within reach here: age must take at least that many floors.</summary>
    public static bool AgeTargetWithinReach(TimeSpan floor, TimeSpan ageWall) => ageWall.TotalSeconds >= MinAgeOverOurs * floor.TotalSeconds;

    /// <summary>
    /// The share of CPU time the hypervisor took from this VM between two readings of the first line of /proc/stat
    /// ("cpu user nice system idle iowait irq softirq steal ..."): steal over the sum of those eight counters. Null when
    /// a line cannot be read or no time passed.
    /// </summary>
    public static double? StealShare(string? before, string? after)
    {
        static long[]? Parse(string? line)
        {
            var fields = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields is null || fields.Length < 9 || fields[0] != "cpu")
            {
                return null;
            }

            var values = new long[8];
            for (var i = 0; i < 8; i++)
            {
                if (!long.TryParse(fields[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out values[i]))
                {
                    return null;
                }
            }

            return values;
        }

        if (Parse(before) is not { } b || Parse(after) is not { } a)
        {
            return null;
        }

        var total = a.Sum() - b.Sum();
        var steal = a[7] - b[7];
        return total > 0 && steal >= 0 ? steal / (double)total : null;
    }

    /// <summary>
    /// The highest age / ours any decryptor doing our work could reach if age wrote its output as cheaply as cat does:
    /// <c>(ageToNull + catCpu) / floor</c>, where <paramref name="ageToNull"/> is age's wall time decrypting into /dev/null.
    /// </summary>
    public static double AgeRatioCeiling(TimeSpan ageToNull, TimeSpan catCpu, TimeSpan floor) => Ratio(ageToNull + catCpu, floor);

    /// <summary>a / b in seconds (infinity when b is zero).</summary>
    public static double Ratio(TimeSpan a, TimeSpan b) => b > TimeSpan.Zero ? a.TotalSeconds / b.TotalSeconds : double.PositiveInfinity;

    private static void RequirePositiveRate(double bytesPerSecond, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(bytesPerSecond))] string? name = null)
    {
        if (!(bytesPerSecond > 0) || double.IsInfinity(bytesPerSecond))
        {
            throw new ArgumentOutOfRangeException(name, bytesPerSecond, "a rate must be a positive finite number of bytes per second");
        }
    }

    public static async Task<ModelBenchReport> RunAsync(ModelBenchOptions options, Action<string> log, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(log);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Size);
        var tag = "attestbroker-bench-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var memRoot = Path.Combine(Path.GetFullPath(options.MemoryDirectory), tag);
        var cipherRoot = Path.Combine(Path.GetFullPath(options.CipherDirectory), tag);
        var (kind, _) = MemoryVolume.Probe(options.MemoryDirectory);
        if (kind is not (VolumeKind.Tmpfs or VolumeKind.Ramfs))
        {
            throw new ModelException(ModelError.DestinationNotMemoryBacked, $"{options.MemoryDirectory} is not tmpfs or ramfs; give --dir on a memory-backed volume");
        }

        var free = new DriveInfo(options.MemoryDirectory).AvailableFreeSpace;
        if (free < (2 * options.Size) + (64L << 20))
        {
            throw new ModelException(ModelError.DestinationUnsafe, $"{options.MemoryDirectory} has {free} bytes free, the benchmark needs about {2 * options.Size}");
        }

        var ageAvailable = FindOnPath("age") is not null && FindOnPath("age-keygen") is not null;
        try
        {
            var plainDir = Path.Combine(memRoot, "plain");
            var plainFile = Path.Combine(plainDir, "model.safetensors");
            var encDir = Path.Combine(cipherRoot, "enc");
            var tinyPlainDir = Path.Combine(memRoot, "plain-1");
            var tinyEncDir = Path.Combine(cipherRoot, "enc-1");
            var ageFile = Path.Combine(cipherRoot, "model.age");
            Directory.CreateDirectory(plainDir);
            Directory.CreateDirectory(cipherRoot);

            log(string.Create(CultureInfo.InvariantCulture, $"bench: {options.Size} bytes ({options.Size / (double)(1 << 30):F2} GiB); plaintext and outputs in {memRoot} ({kind}); ciphertexts in {cipherRoot}; {Environment.ProcessorCount} processors; load average {LoadAverage()}"));
            log("decryptor: " + string.Join(' ', [options.DecryptorExecutable, .. options.DecryptorPrefixArguments, "model", "decrypt"]) + " (child process)");
            var sw = Stopwatch.StartNew();
            await WritePlaintextAsync(plainFile, options.Size, cancellationToken).ConfigureAwait(false);
            log(string.Create(CultureInfo.InvariantCulture, $"created plaintext in {sw.Elapsed.TotalSeconds:F2} s"));

            using var key = ModelKey.Generate();
            sw.Restart();
            await ModelEncryptor.EncryptDirectoryAsync(plainDir, encDir, key, "bench", null, ModelFileHeader.DefaultSegmentSize, options.TreeHash, cancellationToken).ConfigureAwait(false);
            log(string.Create(CultureInfo.InvariantCulture, $"encrypted (MENC v1, {ModelFileHeader.DefaultSegmentSize >> 20} MiB segments, {HashName(options.TreeHash)} digest tree, one thread) in {sw.Elapsed.TotalSeconds:F2} s"));

            // A 1-byte model under the same key: its decrypt is our start-up and every fixed cost.
            Directory.CreateDirectory(tinyPlainDir);
            await File.WriteAllBytesAsync(Path.Combine(tinyPlainDir, "model.safetensors"), [0x42], cancellationToken).ConfigureAwait(false);
            await ModelEncryptor.EncryptDirectoryAsync(tinyPlainDir, tinyEncDir, key, "bench", null, ModelFileHeader.DefaultSegmentSize, options.TreeHash, cancellationToken).ConfigureAwait(false);

            var keyBytes = key.Span.ToArray();
            try
            {
                // Our decrypt first, before any other child, so that RUSAGE_CHILDREN's ru_maxrss, printed beside our sampled peak, is about ours.
                var oursOut = Path.Combine(memRoot, "out-ours");
                string[] oursArgs = [.. options.DecryptorPrefixArguments, "model", "decrypt", encDir, "--key-file", "-", "--out", oursOut];
                var tinyOut = Path.Combine(memRoot, "out-1");
                string[] tinyArgs = [.. options.DecryptorPrefixArguments, "model", "decrypt", tinyEncDir, "--key-file", "-", "--out", tinyOut];
                var warm = await RunChildAsync(options.DecryptorExecutable, oursArgs, keyBytes, cancellationToken, sampleRss: true).ConfigureAwait(false);
                DeleteDirectory(oursOut);
                if (warm.ExitCode != 0)
                {
                    throw new ModelException(ModelError.SourceInvalid, "our decrypt failed in the benchmark: " + warm.Stderr.Trim());
                }

                var peakRss = warm.PeakRssBytes;
                var childrenMaxRss = ChildrenUsage().PeakRssBytes;

                byte[]? identity = null;
                if (ageAvailable)
                {
                    var keygen = await RunChildAsync("age-keygen", [], null, cancellationToken).ConfigureAwait(false);
                    identity = Encoding.ASCII.GetBytes(keygen.Stdout);
                    var recipient = keygen.Stdout.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("# public key: ", StringComparison.Ordinal))?["# public key: ".Length..]
                        ?? throw new ModelException(ModelError.SourceInvalid, "age-keygen printed no public key");
                    sw.Restart();
                    var enc = await RunChildAsync("age", ["-e", "-r", recipient, "-o", ageFile, plainFile], null, cancellationToken).ConfigureAwait(false);
                    if (enc.ExitCode != 0)
                    {
                        throw new ModelException(ModelError.SourceInvalid, "age -e failed: " + enc.Stderr.Trim());
                    }

                    log(string.Create(CultureInfo.InvariantCulture, $"encrypted with age in {sw.Elapsed.TotalSeconds:F2} s"));
                }
                else
                {
                    log("age is not installed (apt-get install -y age): skipping the age comparison");
                }

                var best = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
                var bestCpu = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
                void Record(string name, ChildResult r)
                {
                    best[name] = best.TryGetValue(name, out var b) && b <= r.Elapsed ? b : r.Elapsed;
                    bestCpu[name] = bestCpu.TryGetValue(name, out var c) && c <= r.Cpu ? c : r.Cpu;
                }
                var statBefore = CpuStatLine();
                var settle = Path.Combine(memRoot, "settle.bin");
                var oursCiphertext = Path.Combine(encDir, "model.safetensors" + ModelManifest.CiphertextSuffix);
                for (var run = 1; run <= options.Runs; run++)
                {
                    var catOut = Path.Combine(memRoot, "out-cat.bin");
                    await SettleAsync(settle, options.Size, null, cancellationToken).ConfigureAwait(false);
                    var cat = await RunChildAsync("/bin/sh", ["-c", "exec cat \"$1\" > \"$2\"", "sh", plainFile, catOut], null, cancellationToken).ConfigureAwait(false);
                    File.Delete(catOut);
                    Check(cat, "cat");
                    Record("cat", cat);

                    ChildResult? ageThisRun = null;
                    if (identity is not null)
                    {
                        var ageOut = Path.Combine(memRoot, "out-age.bin");
                        await SettleAsync(settle, options.Size, ageFile, cancellationToken).ConfigureAwait(false);
                        var age = await RunChildAsync("age", ["-d", "-i", "-", "-o", ageOut, ageFile], identity, cancellationToken).ConfigureAwait(false);
                        File.Delete(ageOut);
                        Check(age, "age -d");
                        Record("age", age);
                        ageThisRun = age;

                        var ageNull = await RunChildAsync("age", ["-d", "-i", "-", "-o", "/dev/null", ageFile], identity, cancellationToken).ConfigureAwait(false);
                        Check(ageNull, "age -d -o /dev/null");
                        Record("age-null", ageNull);
                    }

                    await SettleAsync(settle, options.Size, oursCiphertext, cancellationToken).ConfigureAwait(false);
                    var ours = await RunChildAsync(options.DecryptorExecutable, oursArgs, keyBytes, cancellationToken).ConfigureAwait(false);
                    DeleteDirectory(oursOut);
                    Check(ours, "our model decrypt");
                    Record("ours", ours);

                    var tiny = await RunChildAsync(options.DecryptorExecutable, tinyArgs, keyBytes, cancellationToken).ConfigureAwait(false);
                    DeleteDirectory(tinyOut);
                    Check(tiny, "our model decrypt (1-byte model)");
                    Record("startup", tiny);
                    var paired = string.Create(CultureInfo.InvariantCulture, $"ours / cat {Ratio(ours.Elapsed, cat.Elapsed):F2}{(ageThisRun is { } atr ? $", age / ours {Ratio(atr.Elapsed, ours.Elapsed):F2}" : string.Empty)}");
                    log(string.Create(CultureInfo.InvariantCulture, $"run {run}: cat {cat.Elapsed.TotalSeconds:F3} s (cpu {cat.Cpu.TotalSeconds:F3}), {(ageThisRun is { } ar ? $"age -d {ar.Elapsed.TotalSeconds:F3} s (cpu {ar.Cpu.TotalSeconds:F3}), " : string.Empty)}ours {ours.Elapsed.TotalSeconds:F3} s (cpu {ours.Cpu.TotalSeconds:F3}); this run: {paired}; load average {LoadAverage()}"));
                }

                if (identity is not null)
                {
                    CryptographicOperations.ZeroMemory(identity);
                }

                // Peak RSS comes from untimed runs only, the first one above and this one: reading /proc every few
                // milliseconds wakes a thread that takes turns with the decrypt's two workers on two cores, while cat and
                // age run unobserved.
                var sampled = await RunChildAsync(options.DecryptorExecutable, oursArgs, keyBytes, cancellationToken, sampleRss: true).ConfigureAwait(false);
                DeleteDirectory(oursOut);
                Check(sampled, "our model decrypt (peak RSS run)");
                peakRss = Math.Max(peakRss, sampled.PeakRssBytes);

                // The same pipeline called in-process (no process start-up, no JIT of the command line), for the record.
                var inProcess = TimeSpan.MaxValue;
                for (var run = 1; run <= options.Runs; run++)
                {
                    await SettleAsync(settle, options.Size, oursCiphertext, cancellationToken).ConfigureAwait(false);
                    var t = Stopwatch.StartNew();
                    await ModelDecryptor.DecryptAsync(new DirectoryModelSource(encDir), ModelKey.FromBytes(keyBytes), oursOut, null, cancellationToken).ConfigureAwait(false);
                    t.Stop();
                    DeleteDirectory(oursOut);
                    inProcess = t.Elapsed < inProcess ? t.Elapsed : inProcess;
                }

                var steal = StealShare(statBefore, CpuStatLine());
                log(string.Create(CultureInfo.InvariantCulture, $"in-process ModelDecryptor (best of {options.Runs}): {inProcess.TotalSeconds:F3} s, {options.Size / inProcess.TotalSeconds / (1 << 30):F2} GiB/s, {inProcess.TotalSeconds / best["cat"].TotalSeconds:F2} x cat"));
                var aes = AesGcmSingleCoreRate();
                var hash = TreeHashSingleCoreRate(options.TreeHash);
                var report = new ModelBenchReport(true, options.Size, best["ours"], best["cat"], best.TryGetValue("age", out var a) ? a : null, aes, hash, peakRss)
                {
                    TreeHash = options.TreeHash,
                    OtherTreeHashSingleCoreBytesPerSecond = TreeHashSingleCoreRate(OtherHash(options.TreeHash)),
                    OursCpu = bestCpu["ours"],
                    CatCpu = bestCpu["cat"],
                    AgeCpu = bestCpu.TryGetValue("age", out var ac) ? ac : null,
                    AgeToNull = best.TryGetValue("age-null", out var an) ? an : null,
                    AgeToNullCpu = bestCpu.TryGetValue("age-null", out var anc) ? anc : null,
                    StartupWall = best["startup"],
                    StartupCpu = bestCpu["startup"],
                    Processors = Environment.ProcessorCount,
                    HostStealShare = steal,
                    FloorWall = Floor(options.Size, hash, aes, bestCpu["cat"], best["startup"], Environment.ProcessorCount),
                    ChildrenMaxRssBytes = childrenMaxRss,
                    Decryptor = options.DecryptorPrefixArguments.Count > 0 && options.DecryptorPrefixArguments[0].EndsWith(".dll", StringComparison.Ordinal)
                        ? Path.GetFileNameWithoutExtension(options.DecryptorPrefixArguments[0])
                        : Path.GetFileName(options.DecryptorExecutable),
                };
                Print(report, log);
                var ok = report.Ours.TotalSeconds <= MaxOursOverCat * report.Cat.TotalSeconds
                    && (report.Age is null || report.Age.Value.TotalSeconds >= MinAgeOverOurs * report.Ours.TotalSeconds)
                    && report.OursPeakRssBytes is >= 0 and <= MaxPeakRssBytes;
                return report with { Succeeded = ok };
            }
            finally
            {
                CryptographicOperations.ZeroMemory(keyBytes);
            }
        }
        finally
        {
            DeleteDirectory(memRoot);
            DeleteDirectory(cipherRoot);
        }
    }

    /// <summary>One core's AES-256-GCM encryption rate over 4 MiB buffers (bytes per second).</summary>
    public static double AesGcmSingleCoreRate(TimeSpan? duration = null)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(ChunkSize, pinned: true);
        RandomNumberGenerator.Fill(buffer);
        Span<byte> key = stackalloc byte[32];
        var nonce = new byte[12];
        var tag = new byte[16];
        RandomNumberGenerator.Fill(key);
        using var aes = new AesGcm(key, 16);
        CryptographicOperations.ZeroMemory(key);
        return Measure(duration, () =>
        {
            BinaryPrimitives.WriteInt64LittleEndian(nonce, BinaryPrimitives.ReadInt64LittleEndian(nonce) + 1);
            aes.Encrypt(nonce, buffer, buffer, tag);
        });
    }

    /// <summary>One core's rate of a digest tree hash over 4 MiB buffers, a segment's leaf as the decryptor hashes it (bytes per second).</summary>
    public static double TreeHashSingleCoreRate(CiphertextTreeHash hash, TimeSpan? duration = null)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(ChunkSize, pinned: true);
        RandomNumberGenerator.Fill(buffer);
        var digest = new byte[32];
        return Measure(duration, () => CiphertextDigestTree.HashLeaf(hash, buffer, digest));
    }

    /// <summary>How the bench prints a tree hash.</summary>
    public static string HashName(CiphertextTreeHash hash) => hash == CiphertextTreeHash.Blake3 ? "BLAKE3" : "SHA-256";

    /// <summary>The tree hash the bench measures for comparison: the one the model does not use.</summary>
    private static CiphertextTreeHash OtherHash(CiphertextTreeHash hash) => hash == CiphertextTreeHash.Blake3 ? CiphertextTreeHash.Sha256 : CiphertextTreeHash.Blake3;

    private delegate void ChunkAction();

    /// <summary>Bytes per second of CPU time of this thread (getrusage RUSAGE_THREAD), so other load on the machine does not skew it; wall time where that is unavailable.</summary>
    private static double Measure(TimeSpan? duration, ChunkAction action)
    {
        var limit = duration ?? TimeSpan.FromSeconds(1);
        for (var i = 0; i < 8; i++)
        {
            action();
        }

        long bytes = 0;
        var cpuStart = ThreadCpu();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < limit || bytes < 64L * ChunkSize)
        {
            action();
            bytes += ChunkSize;
        }

        var cpu = ThreadCpu() - cpuStart;
        return bytes / (cpu > TimeSpan.Zero ? cpu : sw.Elapsed).TotalSeconds;
    }

    private static TimeSpan ThreadCpu()
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            return TimeSpan.Zero;
        }

        const int RusageThread = 1;
        Span<byte> buffer = stackalloc byte[256];
        int rc;
        unsafe
        {
            fixed (byte* p = buffer)
            {
                rc = GetRUsage(RusageThread, p);
            }
        }

        return rc == 0 ? Timeval(buffer) + Timeval(buffer[16..]) : TimeSpan.Zero;
    }

    private static TimeSpan Timeval(ReadOnlySpan<byte> b)
        => TimeSpan.FromSeconds(BinaryPrimitives.ReadInt64LittleEndian(b)) + TimeSpan.FromMicroseconds(BinaryPrimitives.ReadInt64LittleEndian(b[8..]));

    private static void Print(ModelBenchReport r, Action<string> log)
    {
        static string S(TimeSpan t) => t.TotalSeconds.ToString("F3", CultureInfo.InvariantCulture) + " s";
        string Rate(double bytesPerSecond) => (bytesPerSecond / (1 << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB/s";
        double PerSecond(TimeSpan t) => r.Size / t.TotalSeconds;
        var oneCore = TimeSpan.FromSeconds(r.Size / r.AesGcmSingleCoreBytesPerSecond);
        log("results (best of runs; wall time, rate, CPU time user+sys):");
        log($"  {"cat plaintext -> tmpfs",-32}{S(r.Cat),10}  {Rate(PerSecond(r.Cat))}  cpu {S(r.CatCpu)}");
        if (r.Age is { } age)
        {
            log($"  {"age -d -> tmpfs",-32}{S(age),10}  {Rate(PerSecond(age))}  cpu {S(r.AgeCpu ?? TimeSpan.Zero)}");
        }

        log($"  {r.Decryptor + " model decrypt",-32}{S(r.Ours),10}  {Rate(PerSecond(r.Ours))}  cpu {S(r.OursCpu)}  (child process, includes start-up)");
        log($"  {"AES-256-GCM, one core",-32}{S(oneCore),10}  {Rate(r.AesGcmSingleCoreBytesPerSecond)}  (in-process loop, 4 MiB buffers, per second of CPU time)");
        log($"  {HashName(r.TreeHash) + ", one core",-32}{S(TimeSpan.FromSeconds(r.Size / r.TreeHashSingleCoreBytesPerSecond)),10}  {Rate(r.TreeHashSingleCoreBytesPerSecond)}  (per second of CPU time; the model's digest tree hash)");
        if (r.OtherTreeHashSingleCoreBytesPerSecond is { } other)
        {
            log($"  {HashName(OtherHash(r.TreeHash)) + ", one core",-32}{S(TimeSpan.FromSeconds(r.Size / other)),10}  {Rate(other)}  (for comparison: the other tree hash, not used in this run)");
        }
        log(string.Create(CultureInfo.InvariantCulture, $"  ours / cat  = {r.Ours.TotalSeconds / r.Cat.TotalSeconds:F2}  (target <= 1.15)"));
        if (r.Age is { } a)
        {
            log(string.Create(CultureInfo.InvariantCulture, $"  age / ours  = {a.TotalSeconds / r.Ours.TotalSeconds:F2}  (target >= 2)"));
        }

        log(string.Create(CultureInfo.InvariantCulture, $"  ours / one-core AES-GCM = {r.Ours.TotalSeconds / oneCore.TotalSeconds:F2}"));
        log(r.OursPeakRssBytes < 0
            ? "  peak RSS of our decrypt: unknown (no /proc/PID/status VmHWM; target <= 64 MiB not shown to hold)"
            : string.Create(CultureInfo.InvariantCulture, $"  peak RSS of our decrypt = {r.OursPeakRssBytes / (double)(1 << 20):F1} MiB  (target <= 64 MiB; VmHWM, read every {RssSampleInterval.TotalMilliseconds:F0} ms during two untimed runs)"));
        if (r.ChildrenMaxRssBytes >= 0)
        {
            log(string.Create(CultureInfo.InvariantCulture, $"    (getrusage's ru_maxrss after that first child, {r.ChildrenMaxRssBytes / (double)(1 << 20):F1} MiB, can count this bench's own memory: Linux carries a vfork parent's high-water mark into the child at exec)"));
        }

        log(r.HostStealShare is { } st
            ? string.Create(CultureInfo.InvariantCulture, $"  CPU time taken by the host (steal) during the timed runs: {st * 100:F1} %{(st > 0.02 ? ": other guests were busy, so times vary from run to run" : string.Empty)}")
            : "  CPU time taken by the host (steal): unknown (no /proc/stat)");
        PrintFloor(r, log);
    }

    /// <summary>The floor lines: what the best decryptor doing our work could reach on this machine, measured in this run.</summary>
    private static void PrintFloor(ModelBenchReport r, Action<string> log)
    {
        static string Reach(bool within) => within ? "within reach" : "out of reach at these rates";
        var inv = CultureInfo.InvariantCulture;
        log("what a decryptor doing our work could reach on this machine, estimated from this run's figures:");
        if (r.AgeToNull is { } ageNull)
        {
            log(string.Create(inv, $"  age -d -> /dev/null             {ageNull.TotalSeconds,7:F3} s  (cpu {(r.AgeToNullCpu ?? TimeSpan.Zero).TotalSeconds:F3} s)  age's decryption without the tmpfs writes"));
        }

        log(string.Create(inv, $"  start-up (1-byte model, child)  {r.StartupWall.TotalSeconds,7:F3} s  (cpu {r.StartupCpu.TotalSeconds:F3} s)  our decrypt as run above, of a 1-byte model under the same key"));
        var h = r.Size / r.TreeHashSingleCoreBytesPerSecond;
        var d = r.Size / r.AesGcmSingleCoreBytesPerSecond;
        log(string.Create(inv, $"  floor on {r.Processors} cores: {r.StartupWall.TotalSeconds:F2} + (H {h:F2} + D {d:F2} + cat cpu {r.CatCpu.TotalSeconds:F2}) / {r.Processors} = {r.FloorWall.TotalSeconds:F2} s"));
        log("    (an estimate: every byte hashed and decrypted at this run's one-core rates, copied at cat's CPU cost, perfect use of every core)");
        var cat = string.Create(inv, $"ours / cat >= {r.BestOursOverCat:F2} (target <= {MaxOursOverCat:F2}: {Reach(CatTargetWithinReach(r.FloorWall, r.Cat))})");
        var age = r.Age is { } a
            ? string.Create(inv, $"age / ours <= {r.BestAgeOverOurs:F2} (target >= {MinAgeOverOurs:F0}: {Reach(AgeTargetWithinReach(r.FloorWall, a))})")
            : "age / ours: not measured (age is not installed)";
        log($"  best reachable here: {cat}; {age}");
        var noStartup = Floor(r.Size, r.TreeHashSingleCoreBytesPerSecond, r.AesGcmSingleCoreBytesPerSecond, r.CatCpu, TimeSpan.Zero, r.Processors);
        var catNoStartup = string.Create(inv, $"ours / cat >= {Ratio(noStartup, r.Cat):F2} ({Reach(CatTargetWithinReach(noStartup, r.Cat))})");
        var ageNoStartup = r.Age is { } a0 ? string.Create(inv, $"age / ours <= {Ratio(a0, noStartup):F2} ({Reach(AgeTargetWithinReach(noStartup, a0))})") : "age / ours: not measured";
        log($"  the same with no start-up at all: {catNoStartup}; {ageNoStartup}");
        if (r.AgeOverOursCeiling is { } ceiling && r.AgeToNull is { } toNull)
        {
            var ceilingNoStartup = AgeRatioCeiling(toNull, r.CatCpu, noStartup);
            log(string.Create(inv, $"  with age's writes priced like cat's (age -d -> /dev/null + cat cpu = {(toNull + r.CatCpu).TotalSeconds:F2} s): age / ours <= {ceiling:F2} ({Reach(ceiling >= MinAgeOverOurs)}); with no start-up <= {ceilingNoStartup:F2} ({Reach(ceilingNoStartup >= MinAgeOverOurs)})"));
        }
    }

    private static void Check(ChildResult result, string what)
    {
        if (result.ExitCode != 0)
        {
            throw new ModelException(ModelError.SourceInvalid, $"{what} failed (exit {result.ExitCode}): {result.Stderr.Trim()}");
        }
    }

    private static async Task WritePlaintextAsync(string path, long size, CancellationToken cancellationToken)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(ChunkSize, pinned: true);
        var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        await using (stream.ConfigureAwait(false))
        {
            for (long written = 0; written < size; written += ChunkSize)
            {
                var n = (int)Math.Min(ChunkSize, size - written);
                RandomNumberGenerator.Fill(buffer.AsSpan(0, n));
                await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Puts the machine in the same state before every timed contender. First it reads the contender's source once, so
    /// that every contender reads from memory, as cat does from tmpfs (a file not read for a while may have left the page
    /// cache: this VM's DAMON reclaim pages out file pages idle for a minute). Then it writes <paramref name="size"/> bytes
    /// to a scratch file on the memory-backed volume and deletes it, so that every contender allocates its output pages
    /// from pages freed a moment ago. Without that the order decided: on a VM whose freed memory goes back to the host
    /// (free page reporting), the contender that ran right after a deletion got recycled pages, and one that ran later
    /// got pages the host had to fault in again, which cost up to several times more per byte.
    /// </summary>
    private static async Task SettleAsync(string path, long size, string? source, CancellationToken cancellationToken)
    {
        var buffer = GC.AllocateArray<byte>(ChunkSize, pinned: true);
        if (source is not null)
        {
            using var input = File.OpenHandle(source, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
            long offset = 0;
            int n;
            while ((n = await RandomAccess.ReadAsync(input, buffer.AsMemory(), offset, cancellationToken).ConfigureAwait(false)) > 0)
            {
                offset += n;
            }

            Array.Clear(buffer);
        }

        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None))
        {
            for (long written = 0; written < size; written += ChunkSize)
            {
                var n = (int)Math.Min(ChunkSize, size - written);
                await RandomAccess.WriteAsync(handle, buffer.AsMemory(0, n), written, cancellationToken).ConfigureAwait(false);
            }
        }

        File.Delete(path);
    }

    /// <summary>A child's exit code, wall and CPU time, output, and (when sampled) its peak resident set in bytes, else -1.</summary>
    private sealed record ChildResult(int ExitCode, TimeSpan Elapsed, TimeSpan Cpu, string Stdout, string Stderr, long PeakRssBytes = -1);

    /// <summary>How often a child's VmHWM is read while it runs.</summary>
    private static readonly TimeSpan RssSampleInterval = TimeSpan.FromMilliseconds(2);

    /// <summary>
    /// Runs a child to its end. With <paramref name="sampleRss"/>, reads its VmHWM (/proc/PID/status: the kernel's
    /// high-water mark of the child's own resident set since its exec) every <see cref="RssSampleInterval"/> until it
    /// exits, and returns the last (largest) value. RUSAGE_CHILDREN's ru_maxrss cannot be used for this: .NET starts
    /// children with vfork, and Linux carries the parent's high-water mark into the child's ru_maxrss at exec, so it
    /// reports the bench's own memory whenever that is larger.
    /// </summary>
    private static async Task<ChildResult> RunChildAsync(string fileName, IReadOnlyList<string> arguments, byte[]? stdin, CancellationToken cancellationToken, bool sampleRss = false)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        var cpuBefore = ChildrenUsage().Cpu;
        var sw = Stopwatch.StartNew();
        using var process = Process.Start(info) ?? throw new ModelException(ModelError.SourceUnavailable, $"cannot start {fileName}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        var sampler = sampleRss ? Task.Run(() => SamplePeakRss(process), cancellationToken) : Task.FromResult(-1L);
        if (stdin is not null)
        {
            await process.StandardInput.BaseStream.WriteAsync(stdin, cancellationToken).ConfigureAwait(false);
        }

        process.StandardInput.Close();
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        var elapsed = sw.Elapsed;
        var cpu = ChildrenUsage().Cpu - cpuBefore;
        return new ChildResult(process.ExitCode, elapsed, cpu, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), await sampler.ConfigureAwait(false));
    }

    /// <summary>The largest VmHWM read from /proc/PID/status while the process ran, in bytes; -1 when none could be read.</summary>
    private static long SamplePeakRss(Process process)
    {
        var status = $"/proc/{process.Id}/status";
        long peak = -1;
        while (!process.HasExited)
        {
            try
            {
                foreach (var line in File.ReadLines(status))
                {
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    {
                        var kib = long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
                        peak = Math.Max(peak, kib * 1024);
                        break;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                // Gone between the check and the read (or no /proc): keep what was read.
            }

            Thread.Sleep(RssSampleInterval);
        }

        return peak;
    }

    private static string? CpuStatLine()
    {
        try
        {
            return File.Exists("/proc/stat") ? File.ReadLines("/proc/stat").FirstOrDefault() : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static void DeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// getrusage(RUSAGE_CHILDREN): the largest resident set of any waited-for child so far (ru_maxrss, KiB on Linux) and
    /// the user + system CPU time of all of them.
    /// </summary>
    private static (long PeakRssBytes, TimeSpan Cpu) ChildrenUsage()
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            return (-1, TimeSpan.Zero);
        }

        // struct rusage on 64-bit Linux: ru_utime and ru_stime (struct timeval: 8-byte seconds, 8-byte microseconds), then long ru_maxrss.
        const int UserTimeOffset = 0;
        const int SystemTimeOffset = 16;
        const int MaxRssOffset = 32;
        Span<byte> buffer = stackalloc byte[256];
        int rc;
        unsafe
        {
            fixed (byte* p = buffer)
            {
                rc = GetRUsage(-1, p);
            }
        }

        if (rc != 0)
        {
            return (-1, TimeSpan.Zero);
        }

        return (BinaryPrimitives.ReadInt64LittleEndian(buffer[MaxRssOffset..]) * 1024, Timeval(buffer[UserTimeOffset..]) + Timeval(buffer[SystemTimeOffset..]));
    }

    [LibraryImport("libc", EntryPoint = "getrusage", SetLastError = true)]
    private static unsafe partial int GetRUsage(int who, byte* usage);
}
