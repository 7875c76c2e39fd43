namespace AttestBroker.Evidence;

/// <summary>
/// The one exception the parsers throw: the input is not well-formed evidence. It names the field and the byte
/// offset at which the problem was found. It never carries secret material (evidence is public).
/// </summary>
public sealed class EvidenceFormatException : Exception
{
    public EvidenceFormatException(string field, long offset, string message)
        : base($"{field} at offset 0x{offset:x}: {message}")
    {
        Field = field;
        Offset = offset;
    }

    public EvidenceFormatException()
        : this("evidence", 0, "malformed evidence")
    {
    }

    public EvidenceFormatException(string message)
        : this("evidence", 0, message)
    {
    }

    public EvidenceFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
        Field = "evidence";
    }

    /// <summary>The name of the field that is malformed, as in the vendor's specification.</summary>
    public string Field { get; } = "evidence";

    /// <summary>The byte offset of that field in the input.</summary>
    public long Offset { get; }
}
