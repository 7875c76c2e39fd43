using System.Security.Cryptography;

namespace AttestBroker.Benchmarks;

/// <summary>This machine's raw ECDSA verification cost, the limit the evidence verifiers are measured against.</summary>
public sealed class EcdsaBaseline : IDisposable
{
    private readonly ECDsa _p256 = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly byte[] _message = new byte[0x2A0]; // SNP signed area; a TDX v4 quote signs the first 632 bytes
    private readonly byte[] _sig256;
    private readonly byte[] _sig384;

    public EcdsaBaseline()
    {
        RandomNumberGenerator.Fill(_message);
        _sig256 = _p256.SignData(_message.AsSpan(0, 632), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        _sig384 = _p384.SignData(_message, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <summary>One P-256/SHA-256 verification over a TDX-quote-sized message.</summary>
    public bool VerifyP256() => _p256.VerifyData(_message.AsSpan(0, 632), _sig256, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>One P-384/SHA-384 verification over an SNP-report-sized message.</summary>
    public bool VerifyP384() => _p384.VerifyData(_message, _sig384, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    public void Dispose()
    {
        _p256.Dispose();
        _p384.Dispose();
    }
}
