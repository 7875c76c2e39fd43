using System.Text.Encodings.Web;
using System.Text.Json;

namespace AttestBroker.Protocol;

/// <summary>JSON reading shared by the JWK, JWE and token parsers: no duplicate members, no comments, shallow depth, typed errors.</summary>
internal static class StrictJson
{
    private static readonly JsonDocumentOptions Options = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = 16,
        AllowDuplicateProperties = false,
    };

    /// <summary>
    /// Writer settings for everything this library emits: compact, and no escaping of '+' or other ASCII
    /// punctuation (JOSE values such as "attest-result+jwt" must appear literally; quotes, backslashes and
    /// control characters are still escaped).
    /// </summary>
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
    };

    /// <summary>Parses UTF-8 JSON whose root must be an object; the caller disposes the document.</summary>
    public static JsonDocument ParseObject(ReadOnlyMemory<byte> utf8, ProtocolError error, string what)
    {
        // The reader checks UTF-8 only lazily (when a string is read), so check the whole text first.
        if (!System.Text.Unicode.Utf8.IsValid(utf8.Span))
        {
            throw new ProtocolException(error, $"{what} is not valid UTF-8");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8, Options);
        }
        catch (JsonException)
        {
            throw new ProtocolException(error, $"{what} is not valid JSON (or repeats a member)");
        }
        catch (ArgumentException)
        {
            throw new ProtocolException(error, $"{what} is not valid UTF-8 JSON");
        }

        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new ProtocolException(error, $"{what} is not a JSON object");
        }

        return doc;
    }

    /// <summary>
    /// Runs a reader over a parsed element, turning the reader's own InvalidOperationException (e.g. a string
    /// holding an escaped lone surrogate) into a typed error.
    /// </summary>
    public static T Read<T>(Func<T> read, ProtocolError error, string what)
    {
        try
        {
            return read();
        }
        catch (InvalidOperationException)
        {
            throw new ProtocolException(error, $"{what} holds a string that is not valid text");
        }
    }

    public static string RequiredString(JsonElement obj, string name, ProtocolError error, string what)
    {
        if (!obj.TryGetProperty(name, out var v))
        {
            throw new ProtocolException(error, $"{what} has no \"{name}\"");
        }

        if (v.ValueKind != JsonValueKind.String)
        {
            throw new ProtocolException(error, $"{what} \"{name}\" is not a string");
        }

        return v.GetString()!;
    }

    public static string? OptionalString(JsonElement obj, string name, ProtocolError error, string what)
    {
        if (!obj.TryGetProperty(name, out var v))
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.String)
        {
            throw new ProtocolException(error, $"{what} \"{name}\" is not a string");
        }

        return v.GetString()!;
    }

    /// <summary>A JSON integer (NumericDate as RFC 7519 uses it here: whole seconds).</summary>
    public static long RequiredInteger(JsonElement obj, string name, ProtocolError error, string what)
    {
        if (!obj.TryGetProperty(name, out var v))
        {
            throw new ProtocolException(error, $"{what} has no \"{name}\"");
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n))
        {
            throw new ProtocolException(error, $"{what} \"{name}\" is not an integer");
        }

        return n;
    }
}
