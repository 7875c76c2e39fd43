using System.Runtime.InteropServices;
using AttestBroker.Evidence;

namespace AttestBroker.Agent.Providers;

/// <summary>An open guest device; closes its descriptor on dispose.</summary>
internal sealed class GuestDevice : IDisposable
{
    private int _fd;

    private GuestDevice(string path, int fd)
    {
        Path = path;
        _fd = fd;
    }

    public string Path { get; }

    public static GuestDevice Open(string path, string provider)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new EvidenceProviderException(EvidenceProviderError.NotAvailable, $"{provider}: {path} exists only on Linux guests");
        }

        var fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new EvidenceProviderException(Libc.Classify(errno), $"{provider}: open {path} failed with {Libc.Name(errno)}: {Libc.Hint(errno)}");
        }

        return new GuestDevice(path, fd);
    }

    /// <summary>ioctl(fd, request, argument); returns 0 or the errno.</summary>
    public unsafe int Ioctl(uint request, byte* argument)
    {
        var rc = Libc.Ioctl(_fd, request, argument);
        return rc < 0 ? Marshal.GetLastPInvokeError() : 0;
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            _ = Libc.Close(_fd);
            _fd = -1;
        }
    }
}

/// <summary>
/// /dev/tdx_guest on kernels without configfs-tsm: TDX_CMD_GET_REPORT0 for the TDREPORT, then the legacy
/// TDX_CMD_GET_QUOTE ioctl (GetQuote TDVMCALL) to have the host's quoting service turn it into a quote. Untested on
/// hardware (none here): the request encoding and response decoding are unit-tested against the byte layouts only.
/// </summary>
public sealed class TdxGuestIoctlProvider : IEvidenceProvider
{
    /// <summary>The upstream device node; some older vendor kernels name it /dev/tdx-guest.</summary>
    public const string DefaultDevice = "/dev/tdx_guest";

    public const string LegacyDevice = "/dev/tdx-guest";

    public TdxGuestIoctlProvider(string? devicePath = null)
    {
        DevicePath = devicePath ?? (File.Exists(DefaultDevice) || !File.Exists(LegacyDevice) ? DefaultDevice : LegacyDevice);
    }

    public string Name => "tdx-ioctl";

    public string DevicePath { get; }

    public Task<TeeKind> GetTeeKindAsync(CancellationToken cancellationToken) => Task.FromResult(TeeKind.Tdx);

    public Task<GuestEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData64, CancellationToken cancellationToken)
    {
        if (reportData64.Length != TdxGuestAbi.ReportDataLength)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidRequest, $"report data must be 64 bytes, got {reportData64.Length}");
        }

        // The GetQuote ioctl blocks until the host answers (hundreds of ms): keep it off the caller's thread.
        return Task.Run(() => GetEvidence(reportData64.Span), cancellationToken);
    }

    private unsafe GuestEvidence GetEvidence(ReadOnlySpan<byte> reportData)
    {
        using var device = GuestDevice.Open(DevicePath, Name);
        var reportRequest = TdxGuestAbi.EncodeReportRequest(reportData);
        int errno;
        fixed (byte* p = reportRequest)
        {
            errno = device.Ioctl(TdxGuestAbi.GetReport0, p);
        }

        if (errno != 0)
        {
            throw new EvidenceProviderException(Libc.Classify(errno), $"{Name}: TDX_CMD_GET_REPORT0 on {DevicePath} failed with {Libc.Name(errno)}: {Libc.Hint(errno)}");
        }

        var tdReport = TdxGuestAbi.DecodeReportResponse(reportRequest);
        var buffer = TdxGuestAbi.EncodeQuoteBuffer(tdReport);
        fixed (byte* b = buffer)
        {
            var quoteRequest = TdxGuestAbi.EncodeQuoteRequest((ulong)b, (ulong)buffer.Length);
            fixed (byte* q = quoteRequest)
            {
                errno = device.Ioctl(TdxGuestAbi.GetQuote, q);
            }
        }

        if (errno != 0)
        {
            var hint = errno is Libc.ENOTTY or Libc.EINVAL
                ? "this kernel has no TDX_CMD_GET_QUOTE (upstream kernels never had it): use configfs-tsm (kernel 6.7 or later)"
                : Libc.Hint(errno);
            throw new EvidenceProviderException(Libc.Classify(errno), $"{Name}: TDX_CMD_GET_QUOTE on {DevicePath} failed with {Libc.Name(errno)}: {hint}");
        }

        var quote = TdxGuestAbi.DecodeQuoteBuffer(buffer);
        if (EvidenceDetector.Detect(quote) != TeeKind.Tdx)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: GetQuote returned {quote.Length} bytes that are not a TDX quote");
        }

        return new GuestEvidence(TeeKind.Tdx, quote, null, Name);
    }
}

/// <summary>
/// /dev/sev-guest: SNP_GET_EXT_REPORT (report and the host's certificate table), falling back to SNP_GET_REPORT when
/// the host keeps no certificates or the kernel refuses the extended request. Untested on hardware (none here): the
/// request encoding and response decoding are unit-tested against the byte layouts only.
/// </summary>
public sealed class SevGuestIoctlProvider : IEvidenceProvider
{
    public const string DefaultDevice = "/dev/sev-guest";

    /// <summary>Largest certificate table accepted (the kernel's SEV_FW_BLOB_MAX_SIZE is 16 KiB; leave room).</summary>
    public const int MaximumCertificatesLength = 64 * 1024;

    public SevGuestIoctlProvider(string? devicePath = null, uint vmpl = 0)
    {
        DevicePath = devicePath ?? DefaultDevice;
        Vmpl = vmpl <= 3 ? vmpl : throw new ArgumentOutOfRangeException(nameof(vmpl), "VMPL is 0 .. 3");
    }

    public string Name => "sev-ioctl";

    public string DevicePath { get; }

    public uint Vmpl { get; }

    public Task<TeeKind> GetTeeKindAsync(CancellationToken cancellationToken) => Task.FromResult(TeeKind.SevSnp);

    public Task<GuestEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData64, CancellationToken cancellationToken)
    {
        if (reportData64.Length != SevGuestAbi.UserDataLength)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidRequest, $"report data must be 64 bytes, got {reportData64.Length}");
        }

        return Task.Run(() => GetEvidence(reportData64.Span), cancellationToken);
    }

    private unsafe GuestEvidence GetEvidence(ReadOnlySpan<byte> reportData)
    {
        using var device = GuestDevice.Open(DevicePath, Name);
        var certificatesLength = 4 * SevGuestAbi.PageSize;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var certificates = (byte*)NativeMemory.AlignedAlloc((nuint)certificatesLength, SevGuestAbi.PageSize);
            try
            {
                new Span<byte>(certificates, certificatesLength).Clear();
                var request = SevGuestAbi.EncodeExtReportRequest(reportData, Vmpl, (ulong)certificates, (uint)certificatesLength);
                var response = new byte[SevGuestAbi.ReportResponseSize];
                var (errno, fw, vmm) = Call(device, SevGuestAbi.GetExtReport, request, response);
                if (errno == 0)
                {
                    var report = SevGuestAbi.DecodeReportResponse(response);
                    var table = new ReadOnlySpan<byte>(certificates, certificatesLength);
                    byte[]? certs = table.IndexOfAnyExcept((byte)0) < 0 ? null : table.ToArray();
                    if (certs is not null)
                    {
                        CertificateTableCheck.Validate(certs, Name);
                    }

                    return new GuestEvidence(TeeKind.SevSnp, report, certs, Name);
                }

                if (vmm == SevGuestAbi.VmmErrorInvalidLength && attempt == 0)
                {
                    var needed = SevGuestAbi.ExtReportCertificatesLength(request);
                    if (needed == 0 || needed > MaximumCertificatesLength)
                    {
                        throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: the host's certificate table needs {needed} bytes (limit {MaximumCertificatesLength})");
                    }

                    certificatesLength = (int)((needed + SevGuestAbi.PageSize - 1) / SevGuestAbi.PageSize * SevGuestAbi.PageSize);
                    continue;
                }

                if (vmm == SevGuestAbi.VmmErrorBusy)
                {
                    throw new EvidenceProviderException(EvidenceProviderError.Busy, $"{Name}: SNP_GET_EXT_REPORT: the host is busy (vmm_error 2)");
                }

                // No extended report here (older host, or certificates not kept by this kernel): the plain report.
                return PlainReport(device, reportData, errno, fw, vmm);
            }
            finally
            {
                NativeMemory.AlignedFree(certificates);
            }
        }

        throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{Name}: SNP_GET_EXT_REPORT kept asking for a larger certificate buffer");
    }

    private GuestEvidence PlainReport(GuestDevice device, ReadOnlySpan<byte> reportData, int extErrno, uint extFw, uint extVmm)
    {
        var request = SevGuestAbi.EncodeReportRequest(reportData, Vmpl);
        var response = new byte[SevGuestAbi.ReportResponseSize];
        var (errno, fw, vmm) = Call(device, SevGuestAbi.GetReport, request, response);
        if (errno != 0)
        {
            var error = vmm == SevGuestAbi.VmmErrorBusy ? EvidenceProviderError.Busy : Libc.Classify(errno);
            throw new EvidenceProviderException(error, $"{Name}: SNP_GET_REPORT on {DevicePath} failed with {Libc.Name(errno)} (fw_error 0x{fw:x}, vmm_error 0x{vmm:x}; SNP_GET_EXT_REPORT had failed with {Libc.Name(extErrno)}, fw_error 0x{extFw:x}, vmm_error 0x{extVmm:x}): {Libc.Hint(errno)}");
        }

        return new GuestEvidence(TeeKind.SevSnp, SevGuestAbi.DecodeReportResponse(response), null, Name);
    }

    private static unsafe (int Errno, uint FirmwareError, uint VmmError) Call(GuestDevice device, uint command, byte[] request, byte[] response)
    {
        fixed (byte* req = request)
        fixed (byte* resp = response)
        {
            var guestRequest = SevGuestAbi.EncodeGuestRequest((ulong)req, (ulong)resp);
            int errno;
            fixed (byte* g = guestRequest)
            {
                errno = device.Ioctl(command, g);
            }

            var (fw, vmm) = SevGuestAbi.DecodeExitInfo2(guestRequest);
            return (errno, fw, vmm);
        }
    }
}
