namespace AttestBroker.Policy;

/// <summary>
/// A policy document that cannot be read or is not valid: the message names the path of the offending field
/// (for example <c>tdx.mrTd[1]</c>) and, for YAML and JSON text, its line and column. Never carries secrets.
/// </summary>
public sealed class PolicyFormatException : Exception
{
    public PolicyFormatException(string path, string problem)
        : base(string.IsNullOrEmpty(path) ? problem : path + ": " + problem)
    {
        Path = path;
        Problem = problem;
    }

    public PolicyFormatException()
        : this(string.Empty, "invalid policy")
    {
    }

    public PolicyFormatException(string message)
        : this(string.Empty, message)
    {
    }

    public PolicyFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
        Path = string.Empty;
        Problem = message;
    }

    /// <summary>The path of the bad field ("" for the document as a whole), e.g. <c>snp.minReportedTcb.snp</c>.</summary>
    public string Path { get; } = string.Empty;

    /// <summary>What is wrong, without the path.</summary>
    public string Problem { get; } = string.Empty;
}
