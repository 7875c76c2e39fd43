namespace AttestBroker.Evidence.Snp;

/// <summary>AMD EPYC generations with SEV-SNP, by their KDS names.</summary>
public enum SnpProduct
{
    /// <summary>Not known from the report alone (v2 reports carry no CPUID) or a generation the KDS does not serve.</summary>
    Unknown,

    /// <summary>EPYC 7003 (family 0x19, models 0x00-0x0F).</summary>
    Milan,

    /// <summary>EPYC 9004 (family 0x19, models 0x10-0x1F and 0xA0-0xAF).</summary>
    Genoa,

    /// <summary>EPYC 9005 (family 0x1A, models 0x00-0x11).</summary>
    Turin,
}

/// <summary>Maps CPUID family/model and KDS names to <see cref="SnpProduct"/>.</summary>
public static class SnpProducts
{
    /// <summary>The product of a CPUID (extended) family and model as reported in a v3+ report.</summary>
    public static SnpProduct FromCpuid(byte family, byte model) => (family, model) switch
    {
        (0x19, <= 0x0F) => SnpProduct.Milan,
        (0x19, >= 0x10 and <= 0x1F) => SnpProduct.Genoa,
        (0x19, >= 0xA0 and <= 0xAF) => SnpProduct.Genoa,
        (0x1A, <= 0x11) => SnpProduct.Turin,
        _ => SnpProduct.Unknown,
    };

    /// <summary>
    /// The product named by a KDS product name or a VCEK productName extension ("Milan", "Milan-B0", "Genoa-B1",
    /// "Turin-C1"): the part before the stepping suffix, compared ordinally and case-sensitively.
    /// </summary>
    public static SnpProduct FromName(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return SnpProduct.Unknown;
        }

        var dash = name.IndexOf('-', StringComparison.Ordinal);
        var head = dash >= 0 ? name[..dash] : name;
        return head switch
        {
            "Milan" => SnpProduct.Milan,
            "Genoa" => SnpProduct.Genoa,
            "Turin" => SnpProduct.Turin,
            _ => SnpProduct.Unknown,
        };
    }

    /// <summary>The KDS name ("Milan", "Genoa", "Turin").</summary>
    public static string ToKdsName(this SnpProduct product) => product switch
    {
        SnpProduct.Milan => "Milan",
        SnpProduct.Genoa => "Genoa",
        SnpProduct.Turin => "Turin",
        _ => throw new ArgumentOutOfRangeException(nameof(product), product, "no KDS name for an unknown product"),
    };

    /// <summary>True for products whose TCB_VERSION uses the Turin layout (FMC SPL in byte 0).</summary>
    public static bool UsesTurinTcbLayout(this SnpProduct product) => product == SnpProduct.Turin;
}
