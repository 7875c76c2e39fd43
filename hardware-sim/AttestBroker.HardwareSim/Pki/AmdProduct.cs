namespace AttestBroker.HardwareSim.Pki;

/// <summary>The AMD EPYC generations the KDS serves SEV-SNP certificates for.</summary>
public enum AmdProduct
{
    Milan,
    Genoa,
    Turin,
}

/// <summary>Names and CPUID identification of the AMD products.</summary>
public static class AmdProducts
{
    public static IReadOnlyList<AmdProduct> All { get; } = [AmdProduct.Milan, AmdProduct.Genoa, AmdProduct.Turin];

    /// <summary>The KDS path name ("Milan", "Genoa", "Turin").</summary>
    public static string KdsName(this AmdProduct product) => product.ToString();

    /// <summary>Lower-case name for file paths and the CLI.</summary>
    public static string CliName(this AmdProduct product) => product.ToString().ToLowerInvariant();

    /// <summary>The VCEK productName extension value (product and stepping).</summary>
    public static string ProductNameExtension(this AmdProduct product) => product switch
    {
        AmdProduct.Milan => "Milan-B0",
        AmdProduct.Genoa => "Genoa-B1",
        _ => "Turin-C1",
    };

    /// <summary>CPUID family, model and stepping as the report's CPUID_FAM_ID, CPUID_MOD_ID and CPUID_STEP carry them.</summary>
    public static (byte Family, byte Model, byte Stepping) Cpuid(this AmdProduct product) => product switch
    {
        AmdProduct.Milan => (0x19, 0x01, 0x01),
        AmdProduct.Genoa => (0x19, 0x11, 0x01),
        _ => (0x1A, 0x02, 0x01),
    };

    /// <summary>Number of CHIP_ID bytes the product uses (Turin: 8; the rest are zero).</summary>
    public static int HwIdLength(this AmdProduct product) => product == AmdProduct.Turin ? 8 : 64;

    public static bool TryParse(string? name, out AmdProduct product)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case "milan":
                product = AmdProduct.Milan;
                return true;
            case "genoa":
                product = AmdProduct.Genoa;
                return true;
            case "turin":
                product = AmdProduct.Turin;
                return true;
            default:
                product = default;
                return false;
        }
    }

    public static AmdProduct Parse(string? name) =>
        TryParse(name, out var p) ? p : throw new SimulatorException($"unknown AMD product '{name}' (expected milan, genoa or turin)");
}
