using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using AttestBroker.Evidence;

namespace AttestBroker.Agent.Providers;

/// <summary>
/// Plays the kernel's part for a report entry in an ordinary directory (tests): configfs creates the attribute files
/// on mkdir and lets rmdir remove an entry that has them; a plain file system does neither.
/// </summary>
internal interface ITsmReportKernel
{
    /// <summary>Called right after mkdir of an entry, before any attribute is touched.</summary>
    void EntryCreated(string entry);

    /// <summary>Called right before rmdir of an entry.</summary>
    void EntryRemoving(string entry);
}

/// <summary>
/// Linux configfs-tsm (kernel 6.7 and later; /sys/kernel/config/tsm/report): one fresh entry directory per request,
/// the 64 bytes of report data written to <c>inblob</c> in one write, the evidence read from <c>outblob</c> (and, for
/// SEV-SNP, the host's certificate table from <c>auxblob</c>), the entry's <c>generation</c> checked to have moved by
/// exactly our one write (another writer raced us otherwise; retried once with a new entry), then the entry removed.
/// </summary>
public sealed class ConfigfsTsmProvider : IEvidenceProvider
{
    public const string DefaultRoot = "/sys/kernel/config/tsm/report";

    /// <summary>Largest attribute read (a TDX quote with its certification data is a few KiB; the SNP certificate table under 16 KiB).</summary>
    public const int MaximumBlobBytes = 1024 * 1024;

    private TeeKind? _tee;

    public ConfigfsTsmProvider(string? root = null)
    {
        Root = root ?? DefaultRoot;
    }

    public string Name => "configfs-tsm";

    /// <summary>The report directory (…/tsm/report).</summary>
    public string Root { get; }

    /// <summary>Test hook playing the kernel's part in an ordinary directory.</summary>
    internal ITsmReportKernel? Kernel { get; init; }

    /// <summary>True when the report directory exists.</summary>
    public static bool IsPresent(string? root = null) => Directory.Exists(root ?? DefaultRoot);

    public async Task<TeeKind> GetTeeKindAsync(CancellationToken cancellationToken)
    {
        if (_tee is { } known)
        {
            return known;
        }

        var entry = CreateEntry();
        try
        {
            var provider = await ReadTextAsync(Path.Combine(entry, "provider"), cancellationToken).ConfigureAwait(false);
            _tee = TeeOf(provider);
            return _tee.Value;
        }
        finally
        {
            RemoveEntry(entry);
        }
    }

    public async Task<GuestEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData64, CancellationToken cancellationToken)
    {
        if (reportData64.Length != 64)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidRequest, $"report data must be 64 bytes, got {reportData64.Length}");
        }

        (long Before, long After) raced = default;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var entry = CreateEntry();
            try
            {
                var before = await ReadGenerationAsync(entry, cancellationToken).ConfigureAwait(false);
                WriteInblob(entry, reportData64.Span);
                var outblob = await ReadBlobAsync(Path.Combine(entry, "outblob"), cancellationToken).ConfigureAwait(false);
                var provider = await ReadTextAsync(Path.Combine(entry, "provider"), cancellationToken).ConfigureAwait(false);
                var tee = TeeOf(provider);
                byte[]? aux = null;
                if (tee == TeeKind.SevSnp && File.Exists(Path.Combine(entry, "auxblob")))
                {
                    aux = await ReadBlobAsync(Path.Combine(entry, "auxblob"), cancellationToken).ConfigureAwait(false);
                    aux = aux.Length == 0 ? null : aux;
                }

                var after = await ReadGenerationAsync(entry, cancellationToken).ConfigureAwait(false);
                if (after != before + 1)
                {
                    raced = (before, after);
                    continue;
                }

                if (outblob.Length == 0)
                {
                    throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: {entry}/outblob is empty (the host's quoting service returned nothing)");
                }

                var detected = EvidenceDetector.Detect(outblob);
                if (detected != tee)
                {
                    throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: provider {provider} but outblob ({outblob.Length} bytes) is {(detected is { } d ? d.ToWireName() : "not recognised")} evidence");
                }

                if (aux is not null)
                {
                    CertificateTableCheck.Validate(aux, Name);
                }

                _tee = tee;
                return new GuestEvidence(tee, outblob, aux, Name);
            }
            finally
            {
                RemoveEntry(entry);
            }
        }

        throw new EvidenceProviderException(EvidenceProviderError.Raced, $"{Name}: another writer changed the report entry twice in a row (generation {raced.Before} became {raced.After}, expected {raced.Before + 1})");
    }

    private static TeeKind TeeOf(string provider) => provider switch
    {
        "tdx_guest" => TeeKind.Tdx,
        "sev_guest" => TeeKind.SevSnp,
        _ => throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"configfs-tsm provider \"{provider}\" is neither tdx_guest nor sev_guest"),
    };

    private string CreateEntry()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new EvidenceProviderException(EvidenceProviderError.NotAvailable, $"{Name}: configfs-tsm exists only on Linux guests");
        }

        for (var i = 0; i < 3; i++)
        {
            var entry = Path.Combine(Root, "attestbroker-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
            if (Libc.Mkdir(entry, 0x1C0 /* 0700 */) == 0)
            {
                Kernel?.EntryCreated(entry);
                return entry;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EEXIST)
            {
                continue;
            }

            var hint = errno == Libc.ENOENT
                ? $"{Root} does not exist: the kernel has no configfs-tsm (6.7 or later, CONFIG_TSM_REPORTS), configfs is not mounted at /sys/kernel/config, or it is not visible in this container"
                : Libc.Hint(errno);
            throw new EvidenceProviderException(Libc.Classify(errno), $"{Name}: mkdir {entry} failed with {Libc.Name(errno)}: {hint}");
        }

        throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: three random entry names under {Root} already existed");
    }

    private void RemoveEntry(string entry)
    {
        Kernel?.EntryRemoving(entry);
        _ = Libc.Rmdir(entry); // best effort: a leftover entry holds no secret (report data is public) and never blocks the next request
    }

    private void WriteInblob(string entry, ReadOnlySpan<byte> reportData)
    {
        var path = Path.Combine(entry, "inblob");
        try
        {
            // One write(2) of exactly 64 bytes, no O_TRUNC (configfs attributes are not truncated).
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            stream.Write(reportData);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw Failed("write", path, ex);
        }
    }

    private async Task<long> ReadGenerationAsync(string entry, CancellationToken cancellationToken)
    {
        var path = Path.Combine(entry, "generation");
        var text = await ReadTextAsync(path, cancellationToken).ConfigureAwait(false);
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var generation)
            ? generation
            : throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: {path} holds \"{text}\", not a number");
    }

    private async Task<string> ReadTextAsync(string path, CancellationToken cancellationToken) =>
        Encoding.ASCII.GetString(await ReadBlobAsync(path, cancellationToken).ConfigureAwait(false)).Trim();

    /// <summary>Reads an attribute to its end: configfs reports a size of 4096 for every attribute, so the size is never trusted.</summary>
    private async Task<byte[]> ReadBlobAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
            await using (stream.ConfigureAwait(false))
            {
                using var buffer = new MemoryStream();
                var chunk = new byte[16 * 1024];
                int n;
                while ((n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    if (buffer.Length + n > MaximumBlobBytes)
                    {
                        throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: {path} is larger than {MaximumBlobBytes} bytes");
                    }

                    buffer.Write(chunk, 0, n);
                }

                return buffer.ToArray();
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw Failed("read", path, ex);
        }
    }

    private EvidenceProviderException Failed(string operation, string path, Exception ex)
    {
        var errno = ex switch
        {
            UnauthorizedAccessException => Libc.EACCES,
            FileNotFoundException or DirectoryNotFoundException => Libc.ENOENT,
            _ when ex.HResult is > 0 and < 4096 => ex.HResult,
            _ => 0,
        };
        return errno == 0
            ? new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: {operation} {path} failed: {ex.Message}", ex)
            : new EvidenceProviderException(Libc.Classify(errno), $"{Name}: {operation} {path} failed with {Libc.Name(errno)}: {Libc.Hint(errno)}", ex);
    }
}
