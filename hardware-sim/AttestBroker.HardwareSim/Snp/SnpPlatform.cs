using AttestBroker.HardwareSim.Pki;

namespace AttestBroker.HardwareSim.Snp;

/// <summary>A simulated SEV-SNP host: product, chip, firmware and TCB. The guest's fields are in <see cref="SnpGuest"/>.</summary>
public sealed class SnpPlatform
{
    public string Name { get; set; } = "snp-default";

    public AmdProduct Product { get; set; } = AmdProduct.Milan;

    /// <summary>64 bytes; for Turin only the first 8 are used and the rest must be zero.</summary>
    public byte[] ChipId { get; set; } = DefaultChipId(AmdProduct.Milan);

    public SnpTcb ReportedTcb { get; set; } = new(Bootloader: 4, Tee: 0, Snp: 22, Microcode: 213, Fmc: 0);

    /// <summary>Null means the same as <see cref="ReportedTcb"/>.</summary>
    public SnpTcb? CurrentTcb { get; set; }

    public SnpTcb? CommittedTcb { get; set; }

    public SnpTcb? LaunchTcb { get; set; }

    public byte FirmwareMajor { get; set; } = 1;

    public byte FirmwareMinor { get; set; } = 55;

    public byte FirmwareBuild { get; set; } = 21;

    /// <summary>PLATFORM_INFO: SMT_EN | TSME_EN by default.</summary>
    public ulong PlatformInfo { get; set; } = 0x3;

    /// <summary>The VLEK's cspID extension (the cloud provider the VLEK was issued to).</summary>
    public string CspId { get; set; } = "attest-sim-csp";

    public static byte[] DefaultChipId(AmdProduct product)
    {
        var id = new byte[64];
        var n = product.HwIdLength();
        for (var i = 0; i < n; i++)
        {
            id[i] = (byte)(0xA0 + (i * 7) + (int)product);
        }

        return id;
    }

    public SnpPlatform Clone()
    {
        var c = (SnpPlatform)MemberwiseClone();
        c.ChipId = (byte[])ChipId.Clone();
        return c;
    }
}

/// <summary>The guest's fields of an SNP report.</summary>
public sealed class SnpGuest
{
    public uint GuestSvn { get; set; }

    public ulong Policy { get; set; } = SnpPolicy.Default;

    public byte[] FamilyId { get; set; } = new byte[16];

    public byte[] ImageId { get; set; } = new byte[16];

    public uint Vmpl { get; set; }

    public byte[] ReportData { get; set; } = new byte[64];

    public byte[] Measurement { get; set; } = Convert.FromHexString("5349D000000000000000000000000000000000000000000000000000000000000000000000000000000000000000AE11");

    public byte[] HostData { get; set; } = new byte[32];

    public byte[] IdKeyDigest { get; set; } = new byte[48];

    public byte[] AuthorKeyDigest { get; set; } = new byte[48];

    public bool AuthorKeyEnabled { get; set; }

    public byte[] ReportId { get; set; } = Convert.FromHexString("5349D00000000000000000000000000000000000000000000000000000001D01");

    public byte[] ReportIdMa { get; set; } = Enumerable.Repeat((byte)0xFF, 32).ToArray();

    public SnpGuest Clone()
    {
        var c = (SnpGuest)MemberwiseClone();
        c.FamilyId = (byte[])FamilyId.Clone();
        c.ImageId = (byte[])ImageId.Clone();
        c.ReportData = (byte[])ReportData.Clone();
        c.Measurement = (byte[])Measurement.Clone();
        c.HostData = (byte[])HostData.Clone();
        c.IdKeyDigest = (byte[])IdKeyDigest.Clone();
        c.AuthorKeyDigest = (byte[])AuthorKeyDigest.Clone();
        c.ReportId = (byte[])ReportId.Clone();
        c.ReportIdMa = (byte[])ReportIdMa.Clone();
        return c;
    }
}
