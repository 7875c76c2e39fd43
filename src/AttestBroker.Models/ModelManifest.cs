using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Models;

/// <summary>One file of a model: its relative path, plaintext size, and the hash and root of its ciphertext digest tree (<see cref="CiphertextDigestTree"/>).</summary>
public sealed record ManifestEntry(string Path, long Size, CiphertextTreeHash TreeHash, byte[] CiphertextTreeRoot);

/// <summary>
/// The manifest of an encrypted model directory (manifest.json). Every file is listed with its relative path
/// ('/'-separated), plaintext size and the hex root of its ciphertext digest tree (<see cref="CiphertextDigestTree"/>),
/// as <c>ciphertextTreeSha256</c> or <c>ciphertextTreeBlake3</c>; the ciphertext is stored at PATH + ".menc". A
/// manifest whose files all use SHA-256 is written as v2, which earlier versions read; one with a BLAKE3 tree is v3.
/// The publisher signs the exact bytes of manifest.json (see <see cref="ManifestSigning"/>).
/// </summary>
public sealed class ModelManifest
{
    /// <summary>The current format: each file names its tree hash, SHA-256 or BLAKE3.</summary>
    public const string FormatName = "attestbroker.model-manifest/v3";

    /// <summary>The format before BLAKE3 trees: SHA-256 trees only. Still written when every file uses SHA-256, and read.</summary>
    public const string FormatNameV2 = "attestbroker.model-manifest/v2";

    /// <summary>The earlier format, which pinned a whole-file SHA-256; refused with a message saying to re-encrypt.</summary>
    public const string FormatNameV1 = "attestbroker.model-manifest/v1";
    public const string FileName = "manifest.json";
    public const string SignatureFileName = "manifest.json.sig";
    public const string CiphertextSuffix = ".menc";
    public const int MaxManifestBytes = 16 << 20;
    public const int MaxFiles = 100_000;
    public const int MaxPathLength = 1024;

    public ModelManifest(string keyId, int segmentSize, IReadOnlyList<ManifestEntry> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        ModelFileHeader.ValidateKeyId(keyId);
        ModelFileHeader.ValidateSegmentSize(segmentSize);
        KeyId = keyId;
        SegmentSize = segmentSize;
        Files = files;
        ValidatePaths(files);
    }

    public string KeyId { get; }

    public int SegmentSize { get; }

    public IReadOnlyList<ManifestEntry> Files { get; }

    /// <summary>Where the ciphertext of <paramref name="entry"/> is stored, relative to the encrypted model's root.</summary>
    public static string CiphertextPath(ManifestEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return entry.Path + CiphertextSuffix;
    }

    /// <summary>Serializes to UTF-8 JSON (indented, files in the given order).</summary>
    public byte[] ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("format", Files.All(f => f.TreeHash == CiphertextTreeHash.Sha256) ? FormatNameV2 : FormatName);
            writer.WriteString("keyId", KeyId);
            writer.WriteNumber("segmentSize", SegmentSize);
            writer.WriteStartArray("files");
            foreach (var f in Files)
            {
                writer.WriteStartObject();
                writer.WriteString("path", f.Path);
                writer.WriteNumber("size", f.Size);
                writer.WriteString(f.TreeHash == CiphertextTreeHash.Blake3 ? "ciphertextTreeBlake3" : "ciphertextTreeSha256", Convert.ToHexStringLower(f.CiphertextTreeRoot));
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>Parses manifest bytes strictly: known format, all fields present, no unknown fields, every path safe.</summary>
    public static ModelManifest Parse(ReadOnlySpan<byte> json)
    {
        if (json.Length > MaxManifestBytes)
        {
            throw new ModelException(ModelError.ManifestMalformed, $"manifest is larger than {MaxManifestBytes} bytes");
        }

        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 8 });
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("top level is not an object");
            }

            // Name the old format before its fields are refused as unknown.
            if (root.TryGetProperty("format", out var declared) && declared.ValueKind == JsonValueKind.String && declared.GetString() == FormatNameV1)
            {
                throw Malformed($"format {FormatNameV1} (whole-file SHA-256) is no longer read: re-encrypt the model with this version, which writes {FormatName} (a per-segment digest tree)");
            }

            string? format = null, keyId = null;
            int? segmentSize = null;
            List<ManifestEntry>? files = null;
            foreach (var p in root.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "format":
                        format = StringValue(p.Value, "format");
                        break;
                    case "keyId":
                        keyId = StringValue(p.Value, "keyId");
                        break;
                    case "segmentSize":
                        segmentSize = p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out var s) ? s : throw Malformed("segmentSize is not an integer");
                        break;
                    case "files":
                        files = ParseFiles(p.Value);
                        break;
                    default:
                        throw Malformed($"unknown field '{p.Name}'");
                }
            }

            if (format != FormatName && format != FormatNameV2)
            {
                throw Malformed($"format is neither {FormatName} nor {FormatNameV2}");
            }

            if (format == FormatNameV2 && files?.Find(f => f.TreeHash != CiphertextTreeHash.Sha256) is { } newer)
            {
                throw Malformed($"{newer.Path} has a BLAKE3 tree, which format {FormatNameV2} does not have (a v3 manifest relabelled?)");
            }

            if (keyId is null || segmentSize is null || files is null)
            {
                throw Malformed("keyId, segmentSize and files are required");
            }

            return new ModelManifest(keyId, segmentSize.Value, files);
        }
        catch (JsonException ex)
        {
            throw new ModelException(ModelError.ManifestMalformed, "manifest is not valid JSON: " + ex.Message, ex);
        }
    }

    /// <summary>
    /// Refuses anything that could leave the destination or collide: absolute paths, backslashes, empty, "." or ".."
    /// components, control characters, ':' (drive letters and streams), duplicates, and a file that is also a directory of another.
    /// </summary>
    public static void ValidatePath(string path)
    {
        if (string.IsNullOrEmpty(path) || path.Length > MaxPathLength)
        {
            throw PathInvalid(path, "empty or too long");
        }

        if (path[0] == '/' || path.Contains('\\', StringComparison.Ordinal) || path.Contains(':', StringComparison.Ordinal))
        {
            throw PathInvalid(path, "absolute or not '/'-separated");
        }

        foreach (var c in path)
        {
            if (char.IsControl(c) || char.IsSurrogate(c))
            {
                throw PathInvalid(path, "contains a control character");
            }
        }

        foreach (var part in path.Split('/'))
        {
            if (part.Length == 0 || part == "." || part == "..")
            {
                throw PathInvalid(path, "has an empty, '.' or '..' component");
            }
        }
    }

    private static void ValidatePaths(IReadOnlyList<ManifestEntry> files)
    {
        if (files.Count > MaxFiles)
        {
            throw Malformed($"more than {MaxFiles} files");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var directories = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in files)
        {
            ArgumentNullException.ThrowIfNull(f);
            ValidatePath(f.Path);
            if (f.Size < 0)
            {
                throw Malformed($"negative size for {f.Path}");
            }

            if (f.CiphertextTreeRoot is null || f.CiphertextTreeRoot.Length != 32)
            {
                throw Malformed($"the ciphertext tree root of {f.Path} is not 32 bytes");
            }

            if (!Enum.IsDefined(f.TreeHash))
            {
                throw Malformed($"unknown tree hash for {f.Path}");
            }

            if (!seen.Add(f.Path))
            {
                throw PathInvalid(f.Path, "listed twice");
            }

            for (var i = f.Path.IndexOf('/', StringComparison.Ordinal); i >= 0; i = f.Path.IndexOf('/', i + 1))
            {
                directories.Add(f.Path[..i]);
            }
        }

        foreach (var d in directories)
        {
            if (seen.Contains(d))
            {
                throw PathInvalid(d, "is both a file and a directory");
            }
        }
    }

    private static List<ManifestEntry> ParseFiles(JsonElement array)
    {
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw Malformed("files is not an array");
        }

        var list = new List<ManifestEntry>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("a files entry is not an object");
            }

            string? path = null;
            long? size = null;
            byte[]? digest = null;
            var hash = CiphertextTreeHash.Sha256;
            foreach (var p in item.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "path":
                        path = StringValue(p.Value, "path");
                        break;
                    case "size":
                        size = p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt64(out var s) && s >= 0 ? s : throw Malformed("size is not a non-negative integer");
                        break;
                    case "ciphertextTreeSha256":
                    case "ciphertextTreeBlake3":
                        if (digest is not null)
                        {
                            throw Malformed("a files entry has more than one ciphertext tree root");
                        }

                        var hex = StringValue(p.Value, p.Name);
                        if (hex.Length != 64 || !hex.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f')))
                        {
                            throw Malformed($"{p.Name} is not 64 lower-case hex digits");
                        }

                        digest = Convert.FromHexString(hex);
                        hash = p.Name == "ciphertextTreeBlake3" ? CiphertextTreeHash.Blake3 : CiphertextTreeHash.Sha256;
                        break;
                    default:
                        throw Malformed($"unknown field '{p.Name}' in a files entry");
                }
            }

            if (path is null || size is null || digest is null)
            {
                throw Malformed("a files entry needs path, size and ciphertextTreeSha256 or ciphertextTreeBlake3");
            }

            list.Add(new ManifestEntry(path, size.Value, hash, digest));
        }

        return list;
    }

    private static string StringValue(JsonElement e, string name)
        => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Malformed($"{name} is not a string");

    private static ModelException Malformed(string why) => new(ModelError.ManifestMalformed, "manifest: " + why);

    private static ModelException PathInvalid(string path, string why)
    {
        var shown = new StringBuilder();
        foreach (var c in path.Length > 200 ? path[..200] : path)
        {
            shown.Append(char.IsControl(c) ? string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}") : c.ToString());
        }

        return new ModelException(ModelError.ManifestPathInvalid, $"manifest path '{shown}' refused: {why}");
    }
}
