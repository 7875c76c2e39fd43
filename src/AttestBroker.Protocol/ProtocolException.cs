namespace AttestBroker.Protocol;

/// <summary>
/// The one exception this library throws for bad input: it names the <see cref="ProtocolError"/> and a short
/// description of what was wrong. It never carries key material, plaintext or shared secrets.
/// </summary>
public sealed class ProtocolException : Exception
{
    public ProtocolException(ProtocolError error, string detail)
        : base($"{error}: {detail}")
    {
        Error = error;
    }

    public ProtocolException()
        : this(ProtocolError.JweMalformed, "malformed protocol message")
    {
    }

    public ProtocolException(string message)
        : this(ProtocolError.JweMalformed, message)
    {
    }

    public ProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
        Error = ProtocolError.JweMalformed;
    }

    /// <summary>What was wrong, as a stable code.</summary>
    public ProtocolError Error { get; }
}
