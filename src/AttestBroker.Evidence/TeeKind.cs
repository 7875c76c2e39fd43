namespace AttestBroker.Evidence;

/// <summary>The kinds of trusted execution environment whose evidence AttestBroker understands.</summary>
public enum TeeKind
{
    /// <summary>Intel TDX: a DCAP quote v4 or v5.</summary>
    Tdx,

    /// <summary>AMD SEV-SNP: an ATTESTATION_REPORT.</summary>
    SevSnp,
}

/// <summary>Wire names of <see cref="TeeKind"/> ("tdx", "sev-snp").</summary>
public static class TeeKindNames
{
    public const string Tdx = "tdx";
    public const string SevSnp = "sev-snp";

    public static string ToWireName(this TeeKind kind) => kind switch
    {
        TeeKind.Tdx => Tdx,
        TeeKind.SevSnp => SevSnp,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static bool TryParse(string? name, out TeeKind kind)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case Tdx:
                kind = TeeKind.Tdx;
                return true;
            case SevSnp or "snp" or "sevsnp":
                kind = TeeKind.SevSnp;
                return true;
            default:
                kind = default;
                return false;
        }
    }
}
