using System.Globalization;
using System.Text.Json;

namespace AttestBroker.Verification.Tdx;

/// <summary>One TCB level of a TDX TCB Info (v3).</summary>
public sealed record TdxTcbLevel(
    IReadOnlyList<int> SgxTcbComponents,
    int PceSvn,
    IReadOnlyList<int> TdxTcbComponents,
    DateTimeOffset? TcbDate,
    string TcbStatus,
    IReadOnlyList<string> AdvisoryIds);

/// <summary>An ISVSVN-keyed TCB level (QE identity levels, TDX module identity levels).</summary>
public sealed record IsvSvnTcbLevel(int IsvSvn, DateTimeOffset? TcbDate, string TcbStatus, IReadOnlyList<string> AdvisoryIds);

/// <summary>A TDX module identity (tcbInfo.tdxModule, or one of tcbInfo.tdxModuleIdentities with its levels).</summary>
public sealed record TdxModuleIdentity(string Id, byte[] MrSigner, byte[] Attributes, byte[] AttributesMask, IReadOnlyList<IsvSvnTcbLevel> TcbLevels);

/// <summary>
/// Intel TDX TCB Info v3, read from the exact signed JSON bytes of the "tcbInfo" value. Only parsing: the signature
/// and the window are checked by the verifier.
/// </summary>
public sealed class TdxTcbInfo
{
    private TdxTcbInfo()
    {
    }

    public string Id { get; private init; } = string.Empty;

    public int Version { get; private init; }

    public DateTimeOffset IssueDate { get; private init; }

    public DateTimeOffset NextUpdate { get; private init; }

    /// <summary>Lowercase hex.</summary>
    public string Fmspc { get; private init; } = string.Empty;

    /// <summary>Lowercase hex.</summary>
    public string PceId { get; private init; } = string.Empty;

    public int TcbEvaluationDataNumber { get; private init; }

    public TdxModuleIdentity? TdxModule { get; private init; }

    public IReadOnlyList<TdxModuleIdentity> TdxModuleIdentities { get; private init; } = [];

    public IReadOnlyList<TdxTcbLevel> TcbLevels { get; private init; } = [];

    private static readonly VerificationMemo<(TdxTcbInfo? Value, string? Error)> Parsed = new(256);

    /// <summary>As <see cref="Parse"/>, remembered per exact bytes (the result is immutable).</summary>
    public static TdxTcbInfo ParseCached(ReadOnlyMemory<byte> json)
    {
        return Parsed.Parse(json.Span, () => Parse(json));
    }

    /// <summary>Parses the "tcbInfo" JSON value; throws <see cref="FormatException"/> when a field is missing or malformed.</summary>
    public static TdxTcbInfo Parse(ReadOnlyMemory<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
            var root = doc.RootElement;
            Json.RequireObject(root, "tcbInfo");
            var levels = new List<TdxTcbLevel>();
            foreach (var level in Json.Array(root, "tcbLevels"))
            {
                var tcb = Json.Object(level, "tcb");
                var sgx = Json.Array(tcb, "sgxtcbcomponents").Select(c => Json.Int(c, "svn", 0, 255)).ToArray();
                var tdx = tcb.TryGetProperty("tdxtcbcomponents", out _)
                    ? Json.Array(tcb, "tdxtcbcomponents").Select(c => Json.Int(c, "svn", 0, 255)).ToArray()
                    : throw new FormatException("a TDX tcbLevel lacks tdxtcbcomponents");
                if (sgx.Length != 16 || tdx.Length != 16)
                {
                    throw new FormatException("a tcbLevel does not have 16 sgxtcbcomponents and 16 tdxtcbcomponents");
                }

                levels.Add(new TdxTcbLevel(sgx, Json.Int(tcb, "pcesvn", 0, 65535), tdx, Json.OptionalDate(level, "tcbDate"), Json.Status(level, Json.PlatformStatuses), Json.Advisories(level)));
            }

            return new TdxTcbInfo
            {
                Id = Json.String(root, "id"),
                Version = Json.Int(root, "version", 0, int.MaxValue),
                IssueDate = Json.Date(root, "issueDate"),
                NextUpdate = Json.Date(root, "nextUpdate"),
                Fmspc = Json.Hex(root, "fmspc", 6),
                PceId = Json.Hex(root, "pceId", 2),
                TcbEvaluationDataNumber = root.TryGetProperty("tcbEvaluationDataNumber", out _) ? Json.Int(root, "tcbEvaluationDataNumber", 0, int.MaxValue) : 0,
                TdxModule = root.TryGetProperty("tdxModule", out var module) ? Module(module, "tdxModule", withLevels: false) : null,
                TdxModuleIdentities = root.TryGetProperty("tdxModuleIdentities", out _)
                    ? Json.Array(root, "tdxModuleIdentities").Select(m => Module(m, Json.String(m, "id"), withLevels: true)).ToArray()
                    : [],
                TcbLevels = levels,
            };
        }
        catch (JsonException ex)
        {
            throw new FormatException("TCB Info is not valid JSON: " + ex.Message, ex);
        }
    }

    private static TdxModuleIdentity Module(JsonElement e, string id, bool withLevels)
    {
        Json.RequireObject(e, id);
        var levels = withLevels
            ? Json.Array(e, "tcbLevels").Select(Json.IsvSvnLevel).ToArray()
            : [];
        return new TdxModuleIdentity(id, Json.HexBytes(e, "mrsigner", 48), Json.HexBytes(e, "attributes", 8), Json.HexBytes(e, "attributesMask", 8), levels);
    }
}

/// <summary>Intel TD QE Identity (enclaveIdentity v2), read from the exact signed JSON bytes of the "enclaveIdentity" value.</summary>
public sealed class TdQeIdentity
{
    private TdQeIdentity()
    {
    }

    public string Id { get; private init; } = string.Empty;

    public int Version { get; private init; }

    public DateTimeOffset IssueDate { get; private init; }

    public DateTimeOffset NextUpdate { get; private init; }

    public uint MiscSelect { get; private init; }

    public uint MiscSelectMask { get; private init; }

    public byte[] Attributes { get; private init; } = [];

    public byte[] AttributesMask { get; private init; } = [];

    public byte[] MrSigner { get; private init; } = [];

    public int IsvProdId { get; private init; }

    public IReadOnlyList<IsvSvnTcbLevel> TcbLevels { get; private init; } = [];

    private static readonly VerificationMemo<(TdQeIdentity? Value, string? Error)> Parsed = new(256);

    /// <summary>As <see cref="Parse"/>, remembered per exact bytes (the result is immutable).</summary>
    public static TdQeIdentity ParseCached(ReadOnlyMemory<byte> json)
    {
        return Parsed.Parse(json.Span, () => Parse(json));
    }

    /// <summary>Parses the "enclaveIdentity" JSON value; throws <see cref="FormatException"/> when a field is missing or malformed.</summary>
    public static TdQeIdentity Parse(ReadOnlyMemory<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
            var root = doc.RootElement;
            Json.RequireObject(root, "enclaveIdentity");
            return new TdQeIdentity
            {
                Id = Json.String(root, "id"),
                Version = Json.Int(root, "version", 0, int.MaxValue),
                IssueDate = Json.Date(root, "issueDate"),
                NextUpdate = Json.Date(root, "nextUpdate"),
                // MISCSELECT is a u32 written as 4 bytes in report byte order (little-endian).
                MiscSelect = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(Json.HexBytes(root, "miscselect", 4)),
                MiscSelectMask = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(Json.HexBytes(root, "miscselectMask", 4)),
                Attributes = Json.HexBytes(root, "attributes", 16),
                AttributesMask = Json.HexBytes(root, "attributesMask", 16),
                MrSigner = Json.HexBytes(root, "mrsigner", 32),
                IsvProdId = Json.Int(root, "isvprodid", 0, 65535),
                TcbLevels = Json.Array(root, "tcbLevels").Select(Json.IsvSvnLevel).ToArray(),
            };
        }
        catch (JsonException ex)
        {
            throw new FormatException("QE Identity is not valid JSON: " + ex.Message, ex);
        }
    }
}

/// <summary>Strict readers over JsonElement that throw <see cref="FormatException"/> naming the member.</summary>
internal static class Json
{
    public static void RequireObject(JsonElement e, string name)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{name} is not a JSON object");
        }
    }

    public static JsonElement Member(JsonElement e, string name)
    {
        RequireObject(e, "parent of " + name);
        return e.TryGetProperty(name, out var v) ? v : throw new FormatException($"member '{name}' is missing");
    }

    public static JsonElement Object(JsonElement e, string name)
    {
        var v = Member(e, name);
        RequireObject(v, name);
        return v;
    }

    public static JsonElement.ArrayEnumerator Array(JsonElement e, string name)
    {
        var v = Member(e, name);
        return v.ValueKind == JsonValueKind.Array ? v.EnumerateArray() : throw new FormatException($"member '{name}' is not an array");
    }

    public static string String(JsonElement e, string name)
    {
        var v = Member(e, name);
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new FormatException($"member '{name}' is not a string");
    }

    public static int Int(JsonElement e, string name, int min, int max)
    {
        var v = Member(e, name);
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n) || n < min || n > max)
        {
            throw new FormatException($"member '{name}' is not an integer in {min}..{max}");
        }

        return (int)n;
    }

    public static DateTimeOffset Date(JsonElement e, string name)
    {
        var s = String(e, name);
        return DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var d)
            ? d
            : throw new FormatException($"member '{name}' is not a date: '{s}'");
    }

    public static DateTimeOffset? OptionalDate(JsonElement e, string name) =>
        e.TryGetProperty(name, out _) ? Date(e, name) : null;

    public static byte[] HexBytes(JsonElement e, string name, int size)
    {
        var s = String(e, name);
        if (s.Length != size * 2)
        {
            throw new FormatException($"member '{name}' is not {size} bytes of hex");
        }

        try
        {
            return Convert.FromHexString(s);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"member '{name}' is not hex", ex);
        }
    }

    public static string Hex(JsonElement e, string name, int size) => Convert.ToHexStringLower(HexBytes(e, name, size));

    public static IReadOnlyList<string> Advisories(JsonElement level)
    {
        if (!level.TryGetProperty("advisoryIDs", out var a))
        {
            return [];
        }

        if (a.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException("member 'advisoryIDs' is not an array");
        }

        return a.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString()! : throw new FormatException("an advisory ID is not a string")).ToArray();
    }

    public static IsvSvnTcbLevel IsvSvnLevel(JsonElement level)
    {
        var tcb = Object(level, "tcb");
        return new IsvSvnTcbLevel(Int(tcb, "isvsvn", 0, 65535), OptionalDate(level, "tcbDate"), Status(level, ComponentStatuses), Advisories(level));
    }

    /// <summary>The statuses a platform TCB level may carry; any other is unrecognised (QVL: TCB_UNRECOGNIZED_STATUS), so the document is refused.</summary>
    public static readonly string[] PlatformStatuses =
    [
        TcbStatusNames.UpToDate, TcbStatusNames.SwHardeningNeeded, TcbStatusNames.ConfigurationNeeded, TcbStatusNames.ConfigurationAndSwHardeningNeeded,
        TcbStatusNames.OutOfDate, TcbStatusNames.OutOfDateConfigurationNeeded, TcbStatusNames.Revoked,
    ];

    /// <summary>The statuses a QE Identity or TDX module level may carry.</summary>
    public static readonly string[] ComponentStatuses = [TcbStatusNames.UpToDate, TcbStatusNames.OutOfDate, TcbStatusNames.Revoked];

    public static string Status(JsonElement level, string[] allowed)
    {
        var status = String(level, "tcbStatus");
        return System.Array.IndexOf(allowed, status) >= 0 ? status : throw new FormatException($"unrecognised tcbStatus '{status}'");
    }
}
