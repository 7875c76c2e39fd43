using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AttestBroker.Verification;

/// <summary>
/// Adds the hardware simulator's roots to a trust store, on an explicit operator setting only
/// (<c>attestbroker verify --trust-simulator DIR</c>). Reads only public certificates from the PKI directory that
/// <c>attest-sim init</c> wrote (intel/root-ca.pem; amd/&lt;product&gt;/ark.pem, ask.pem, asvk.pem), never key files.
/// Every anchor added is marked simulated.
/// </summary>
public static class SimulatorTrust
{
    private static readonly (string Dir, string Product)[] AmdProducts = [("milan", "Milan"), ("genoa", "Genoa"), ("turin", "Turin")];

    /// <summary>The store with the simulated Intel root and AMD ARKs added as anchors, and the ASKs/ASVKs as intermediates.</summary>
    /// <exception cref="InvalidOperationException">The directory is not a simulated PKI or a certificate cannot be read (the message names the file).</exception>
    public static TrustStore AddFromPkiDirectory(TrustStore store, string pkiDir)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(pkiDir);
        if (!Directory.Exists(pkiDir))
        {
            throw new InvalidOperationException($"simulator PKI directory '{pkiDir}' does not exist");
        }

        var roots = new List<TrustAnchor>();
        var intermediates = new List<TrustAnchor>();
        var intelRoot = Path.Combine(pkiDir, "intel", "root-ca.pem");
        if (File.Exists(intelRoot))
        {
            roots.Add(new TrustAnchor(Load(intelRoot), TrustVendor.Intel, null, true));
        }

        foreach (var (dir, product) in AmdProducts)
        {
            var ark = Path.Combine(pkiDir, "amd", dir, "ark.pem");
            if (!File.Exists(ark))
            {
                continue;
            }

            roots.Add(new TrustAnchor(Load(ark), TrustVendor.Amd, product, true));
            foreach (var name in new[] { "ask.pem", "asvk.pem" })
            {
                var path = Path.Combine(pkiDir, "amd", dir, name);
                if (File.Exists(path))
                {
                    intermediates.Add(new TrustAnchor(Load(path), TrustVendor.Amd, product, true));
                }
            }
        }

        if (roots.Count == 0)
        {
            throw new InvalidOperationException($"'{pkiDir}' holds no simulated roots (expected intel/root-ca.pem or amd/<product>/ark.pem, as written by 'attest-sim init')");
        }

        return store.WithSimulatedAnchors(roots, intermediates);
    }

    private static X509Certificate2 Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (IOException ex)
        {
            throw new InvalidOperationException($"cannot read {path}: {ex.Message}", ex);
        }

        if (text.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{path} contains a private key; a trust file must hold only a certificate");
        }

        try
        {
            return X509Certificate2.CreateFromPem(text);
        }
        catch (CryptographicException ex)
        {
            throw new InvalidOperationException($"{path} is not a PEM certificate: {ex.Message}", ex);
        }
    }
}
