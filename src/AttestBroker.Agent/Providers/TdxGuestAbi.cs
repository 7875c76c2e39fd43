using System.Buffers.Binary;

namespace AttestBroker.Agent.Providers;

/// <summary>Linux ioctl request numbers: _IOC(dir, type, nr, size) on x86 (dir in bits 30-31, size in 16-29, type in 8-15, nr in 0-7).</summary>
public static class LinuxIoctl
{
    public const uint Write = 1;
    public const uint Read = 2;

    public static uint Ioc(uint direction, char type, uint number, int size)
    {
        if (size is < 0 or >= 1 << 14)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "an ioctl argument size has 14 bits");
        }

        return (direction << 30) | ((uint)size << 16) | ((uint)type << 8) | number;
    }

    /// <summary>_IOWR(type, nr, size).</summary>
    public static uint ReadWrite(char type, uint number, int size) => Ioc(Write | Read, type, number, size);

    /// <summary>_IOR(type, nr, size).</summary>
    public static uint ReadOnly(char type, uint number, int size) => Ioc(Read, type, number, size);
}

/// <summary>
/// Byte layouts of /dev/tdx_guest (include/uapi/linux/tdx-guest.h) and of the GetQuote TDVMCALL buffer (TDX GHCI
/// "TDG.VP.VMCALL&lt;GetQuote&gt;", with the Quote Generation Service's message inside). Encoding and decoding only;
/// <see cref="TdxGuestIoctlProvider"/> does the system calls.
/// </summary>
public static class TdxGuestAbi
{
    public const int ReportDataLength = 64;
    public const int TdReportLength = 1024;

    /// <summary>struct tdx_report_req: u8 reportdata[64] @0, u8 tdreport[1024] @64.</summary>
    public const int ReportRequestSize = ReportDataLength + TdReportLength;

    /// <summary>struct tdx_quote_req (legacy): u64 buf @0, u64 len @8.</summary>
    public const int QuoteRequestSize = 16;

    /// <summary>TDX_CMD_GET_REPORT0 = _IOWR('T', 1, struct tdx_report_req) = 0xC4405401.</summary>
    public static readonly uint GetReport0 = LinuxIoctl.ReadWrite('T', 1, ReportRequestSize);

    /// <summary>
    /// TDX_CMD_GET_QUOTE = _IOR('T', 2, struct tdx_quote_req) = 0x80105402, as in the tdx-guest GetQuote patches that
    /// vendor kernels carried before configfs-tsm; upstream kernels never merged it (they use configfs-tsm).
    /// </summary>
    public static readonly uint GetQuote = LinuxIoctl.ReadOnly('T', 2, QuoteRequestSize);

    /// <summary>GetQuote buffer header (GHCI): u64 version @0, u64 status @8, u32 in_len @16, u32 out_len @20, data @24.</summary>
    public const int QuoteHeaderSize = 24;

    public const ulong QuoteHeaderVersion = 1;
    public const ulong GetQuoteSuccess = 0;
    public const ulong GetQuoteInFlight = 0xFFFF_FFFF_FFFF_FFFF;
    public const ulong GetQuoteError = 0x8000_0000_0000_0000;
    public const ulong GetQuoteServiceUnavailable = 0x8000_0000_0000_0001;

    /// <summary>The data area starts with the QGS message's length, 4 bytes big-endian.</summary>
    public const int MessageLengthPrefix = 4;

    /// <summary>QGS message header: u16 major @0, u16 minor @2, u32 type @4, u32 size (whole message) @8, u32 error_code @12.</summary>
    public const int QgsHeaderSize = 16;

    public const ushort QgsMajorVersion = 1;
    public const ushort QgsMinorVersion = 0;
    public const uint QgsGetQuoteRequest = 0;
    public const uint QgsGetQuoteResponse = 1;

    /// <summary>GET_QUOTE_REQ body after the header: u32 report_size, u32 id_list_size, report, id list.</summary>
    public const int QgsRequestSize = QgsHeaderSize + 8 + TdReportLength;

    /// <summary>A GetQuote buffer size that holds any quote seen in practice (4 pages).</summary>
    public const int DefaultQuoteBufferSize = 4 * 4096;

    /// <summary>struct tdx_report_req with the report data in place and a zero TDREPORT area.</summary>
    public static byte[] EncodeReportRequest(ReadOnlySpan<byte> reportData)
    {
        if (reportData.Length != ReportDataLength)
        {
            throw new ArgumentException($"report data must be {ReportDataLength} bytes, got {reportData.Length}", nameof(reportData));
        }

        var request = new byte[ReportRequestSize];
        reportData.CopyTo(request);
        return request;
    }

    /// <summary>The TDREPORT the kernel wrote into struct tdx_report_req.</summary>
    public static byte[] DecodeReportResponse(ReadOnlySpan<byte> request)
    {
        if (request.Length != ReportRequestSize)
        {
            throw new ArgumentException($"struct tdx_report_req is {ReportRequestSize} bytes, got {request.Length}", nameof(request));
        }

        var report = request.Slice(ReportDataLength, TdReportLength);
        if (!report.ContainsAnyExcept((byte)0))
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, "TDX_CMD_GET_REPORT0 returned an all-zero TDREPORT");
        }

        return report.ToArray();
    }

    /// <summary>struct tdx_quote_req pointing at a GetQuote buffer.</summary>
    public static byte[] EncodeQuoteRequest(ulong bufferAddress, ulong bufferLength)
    {
        var request = new byte[QuoteRequestSize];
        BinaryPrimitives.WriteUInt64LittleEndian(request, bufferAddress);
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(8), bufferLength);
        return request;
    }

    /// <summary>A GetQuote buffer of <paramref name="bufferSize"/> bytes: GHCI header, then the QGS GET_QUOTE_REQ carrying the TDREPORT.</summary>
    public static byte[] EncodeQuoteBuffer(ReadOnlySpan<byte> tdReport, int bufferSize = DefaultQuoteBufferSize)
    {
        if (tdReport.Length != TdReportLength)
        {
            throw new ArgumentException($"a TDREPORT is {TdReportLength} bytes, got {tdReport.Length}", nameof(tdReport));
        }

        var inLength = MessageLengthPrefix + QgsRequestSize;
        if (bufferSize < QuoteHeaderSize + inLength)
        {
            throw new ArgumentOutOfRangeException(nameof(bufferSize), $"the GetQuote buffer must hold at least {QuoteHeaderSize + inLength} bytes");
        }

        var buffer = new byte[bufferSize];
        var span = buffer.AsSpan();
        BinaryPrimitives.WriteUInt64LittleEndian(span, QuoteHeaderVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(span[8..], GetQuoteSuccess);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], (uint)inLength);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], 0);
        var data = span[QuoteHeaderSize..];
        BinaryPrimitives.WriteUInt32BigEndian(data, QgsRequestSize);
        var message = data[MessageLengthPrefix..];
        BinaryPrimitives.WriteUInt16LittleEndian(message, QgsMajorVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(message[2..], QgsMinorVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(message[4..], QgsGetQuoteRequest);
        BinaryPrimitives.WriteUInt32LittleEndian(message[8..], QgsRequestSize);
        BinaryPrimitives.WriteUInt32LittleEndian(message[12..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(message[16..], TdReportLength);
        BinaryPrimitives.WriteUInt32LittleEndian(message[20..], 0);
        tdReport.CopyTo(message[24..]);
        return buffer;
    }

    /// <summary>The quote from a GetQuote buffer the host filled: status, lengths and the QGS GET_QUOTE_RESP checked.</summary>
    public static byte[] DecodeQuoteBuffer(ReadOnlySpan<byte> buffer)
    {
        if (buffer.Length < QuoteHeaderSize)
        {
            throw Invalid($"the GetQuote buffer is {buffer.Length} bytes, shorter than its {QuoteHeaderSize}-byte header");
        }

        var status = BinaryPrimitives.ReadUInt64LittleEndian(buffer[8..]);
        switch (status)
        {
            case GetQuoteSuccess:
                break;
            case GetQuoteInFlight:
                throw new EvidenceProviderException(EvidenceProviderError.Busy, "GetQuote: the request is still in flight (status 0xffffffffffffffff)");
            case GetQuoteServiceUnavailable:
                throw new EvidenceProviderException(EvidenceProviderError.Busy, "GetQuote: the host's quoting service is unavailable (status 0x8000000000000001)");
            default:
                throw Invalid($"GetQuote: the host reported an error (status 0x{status:x16})");
        }

        var outLength = BinaryPrimitives.ReadUInt32LittleEndian(buffer[20..]);
        if (outLength < MessageLengthPrefix + QgsHeaderSize + 8 || outLength > buffer.Length - QuoteHeaderSize)
        {
            throw Invalid($"GetQuote: out_len {outLength} does not fit a response in a {buffer.Length}-byte buffer");
        }

        var data = buffer.Slice(QuoteHeaderSize, (int)outLength);
        var messageLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (messageLength < QgsHeaderSize + 8 || messageLength > outLength - MessageLengthPrefix)
        {
            throw Invalid($"GetQuote: the QGS message length {messageLength} does not fit out_len {outLength}");
        }

        var message = data.Slice(MessageLengthPrefix, (int)messageLength);
        var major = BinaryPrimitives.ReadUInt16LittleEndian(message);
        var type = BinaryPrimitives.ReadUInt32LittleEndian(message[4..]);
        var size = BinaryPrimitives.ReadUInt32LittleEndian(message[8..]);
        var error = BinaryPrimitives.ReadUInt32LittleEndian(message[12..]);
        if (major != QgsMajorVersion)
        {
            throw Invalid($"GetQuote: QGS message major version {major}, expected {QgsMajorVersion}");
        }

        if (type != QgsGetQuoteResponse)
        {
            throw Invalid($"GetQuote: QGS message type {type}, expected GET_QUOTE_RESP ({QgsGetQuoteResponse})");
        }

        if (size != messageLength)
        {
            throw Invalid($"GetQuote: QGS message size {size} differs from its length prefix {messageLength}");
        }

        if (error != 0)
        {
            throw Invalid($"GetQuote: the quoting service answered error code 0x{error:x}");
        }

        var selectedIdSize = BinaryPrimitives.ReadUInt32LittleEndian(message[QgsHeaderSize..]);
        var quoteSize = BinaryPrimitives.ReadUInt32LittleEndian(message[(QgsHeaderSize + 4)..]);
        var available = (ulong)messageLength - QgsHeaderSize - 8;
        if (quoteSize == 0 || (ulong)selectedIdSize + quoteSize > available)
        {
            throw Invalid($"GetQuote: id size {selectedIdSize} and quote size {quoteSize} do not fit a {messageLength}-byte message");
        }

        return message.Slice(QgsHeaderSize + 8 + (int)selectedIdSize, (int)quoteSize).ToArray();
    }

    private static EvidenceProviderException Invalid(string message) => new(EvidenceProviderError.InvalidResponse, message);
}
