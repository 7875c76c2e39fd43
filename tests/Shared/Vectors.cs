using NUnit.Framework;

namespace AttestBroker.Testing;

/// <summary>Test access to the real-hardware vectors; a test that needs them is ignored (counted as skipped) with the reason when they are absent.</summary>
internal static class Vectors
{
    public static string Dir =>
        TestPaths.VectorsDir ?? IgnoreMissing();

    /// <summary>Absolute path of a file under the vectors folder, e.g. "tdx/go-tdx-guest/quote_v5_sample.dat".</summary>
    public static string Path(string relative)
    {
        var full = System.IO.Path.Combine(Dir, relative);
        if (!File.Exists(full) && !Directory.Exists(full))
        {
            Assert.Ignore($"vector {relative} not found under {Dir}; skipped");
        }

        return full;
    }

    public static byte[] Read(string relative) => File.ReadAllBytes(Path(relative));

    private static string IgnoreMissing()
    {
        Assert.Ignore($"real-hardware vectors not found (set {TestPaths.VectorsVariable} or place shared/attestation-vectors beside the checkout); skipped");
        return string.Empty; // not reached
    }
}
