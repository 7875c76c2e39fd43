namespace AttestBroker.HardwareSim.Tdx;

/// <summary>
/// A simulated TDX host: what its PCK certificate says (FMSPC, PCE-ID, PPID, SGX TCB components, PCESVN, CPUSVN),
/// its TDX module (TEE_TCB_SVN, MRSEAM) and its TD quoting enclave. The TD's own measurements are in <see cref="TdQuoteBody"/>.
/// </summary>
public sealed class TdxPlatform
{
    public string Name { get; set; } = "tdx-default";

    public byte[] Fmspc { get; set; } = Convert.FromHexString("90C06F000000");

    public byte[] PceId { get; set; } = new byte[2];

    public byte[] Ppid { get; set; } = Convert.FromHexString("5349D0000000000000000000000000A1");

    /// <summary>The 16 SGX TCB component SVNs of the PCK certificate.</summary>
    public byte[] SgxTcbComponents { get; set; } = [4, 4, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];

    public ushort PceSvn { get; set; } = 13;

    public byte[] CpuSvn { get; set; } = Convert.FromHexString("04040202040100050000000000000000");

    /// <summary>0 Standard, 1 Scalable, 2 ScalableWithIntegrity.</summary>
    public int SgxType { get; set; } = 1;

    public byte[] PlatformInstanceId { get; set; } = Convert.FromHexString("5349D00000000000000000000000B0B0");

    /// <summary>The PCK extension's Configuration: dynamicPlatform, cachedKeys, SMTEnabled.</summary>
    public bool DynamicPlatform { get; set; } = true;

    public bool CachedKeys { get; set; } = true;

    public bool SmtEnabled { get; set; } = true;

    /// <summary>TEE_TCB_SVN: byte 0 module minor SVN, byte 1 module major version, byte 2 late microcode SVN.</summary>
    public byte[] TeeTcbSvn { get; set; } = Convert.FromHexString("05010300000000000000000000000000");

    /// <summary>TEE_TCB_SVN2 (TDX 1.5 bodies).</summary>
    public byte[] TeeTcbSvn2 { get; set; } = Convert.FromHexString("05010300000000000000000000000000");

    public byte[] MrSeam { get; set; } = Convert.FromHexString("5349D0000000000000000000000000000000000000000000000000000000000000000000000000000000000000005EA1");

    /// <summary>Zero for Intel's own TDX module.</summary>
    public byte[] MrSignerSeam { get; set; } = new byte[48];

    // The TD quoting enclave.
    public byte[] QeMrEnclave { get; set; } = Convert.FromHexString("5349D0000000000000000000000000000000000000000000000000000000E0E0");

    public byte[] QeMrSigner { get; set; } = Convert.FromHexString("5349D00000000000000000000000000000000000000000000000000000005151");

    public ushort QeIsvProdId { get; set; } = 2;

    public ushort QeIsvSvn { get; set; } = 4;

    public uint QeMiscSelect { get; set; }

    public byte[] QeAttributes { get; set; } = Convert.FromHexString("1500000000000000E700000000000000");

    public byte[] QeCpuSvn { get; set; } = Convert.FromHexString("04040202040100050000000000000000");

    /// <summary>QE authentication data carried in the quote.</summary>
    public byte[] QeAuthData { get; set; } = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];

    public TdxPlatform Clone()
    {
        var c = (TdxPlatform)MemberwiseClone();
        c.Fmspc = (byte[])Fmspc.Clone();
        c.PceId = (byte[])PceId.Clone();
        c.Ppid = (byte[])Ppid.Clone();
        c.SgxTcbComponents = (byte[])SgxTcbComponents.Clone();
        c.CpuSvn = (byte[])CpuSvn.Clone();
        c.PlatformInstanceId = (byte[])PlatformInstanceId.Clone();
        c.TeeTcbSvn = (byte[])TeeTcbSvn.Clone();
        c.TeeTcbSvn2 = (byte[])TeeTcbSvn2.Clone();
        c.MrSeam = (byte[])MrSeam.Clone();
        c.MrSignerSeam = (byte[])MrSignerSeam.Clone();
        c.QeMrEnclave = (byte[])QeMrEnclave.Clone();
        c.QeMrSigner = (byte[])QeMrSigner.Clone();
        c.QeAttributes = (byte[])QeAttributes.Clone();
        c.QeCpuSvn = (byte[])QeCpuSvn.Clone();
        c.QeAuthData = (byte[])QeAuthData.Clone();
        return c;
    }
}
