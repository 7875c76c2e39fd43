using AttestBroker.Evidence;
using AttestBroker.Verification;
using AttestBroker.Verification.Collateral;
using AttestBroker.Verification.Snp;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.Cli.Commands;

/// <summary>What the verify-like commands were told about collateral.</summary>
internal sealed record VerifierSettings
{
    public IReadOnlyList<string> CollateralPaths { get; init; } = [];

    public string? VcekFile { get; init; }

    public string? CaChainFile { get; init; }

    public bool FetchCollateral { get; init; }

    public Uri? PcsUrl { get; init; }

    public Uri? KdsUrl { get; init; }

    public string? CacheDirectory { get; init; }
}

/// <summary>Builds one verifier per TEE kind from files (and, when asked, PCS/KDS through the on-disk cache).</summary>
internal sealed class VerifierFactory : IDisposable
{
    private readonly HttpClient? _http;

    private VerifierFactory(IEvidenceVerifier tdx, IEvidenceVerifier snp, HttpClient? http)
    {
        Tdx = tdx;
        Snp = snp;
        _http = http;
    }

    public IEvidenceVerifier Tdx { get; }

    public IEvidenceVerifier Snp { get; }

    public static VerifierFactory Create(VerifierSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        foreach (var path in settings.CollateralPaths)
        {
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                throw new CliUsageException($"--collateral: {path} does not exist");
            }
        }

        foreach (var (path, option) in new[] { (settings.VcekFile, "--vcek"), (settings.CaChainFile, "--ca-chain") })
        {
            if (path is not null && !File.Exists(path))
            {
                throw new CliUsageException($"{option}: {path} does not exist");
            }
        }

        ITdxCollateralProvider tdxFiles;
        ISnpCertificateProvider snpFiles;
        try
        {
            tdxFiles = TdxCollateralSource.FromPaths(settings.CollateralPaths);
            snpFiles = SnpCertificateSource.FromPaths(settings.CollateralPaths, settings.VcekFile, settings.CaChainFile);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or FormatException)
        {
            throw new CliUsageException(ex.Message, ex);
        }

        if (!settings.FetchCollateral)
        {
            return new VerifierFactory(new TdxVerifier(tdxFiles), new SnpVerifier(snpFiles), null);
        }

        var options = new CollateralFetchOptions();
        if (settings.PcsUrl is not null)
        {
            options.IntelPcsBaseUrl = settings.PcsUrl;
            options.IntelCertificatesBaseUrl = settings.PcsUrl;
        }

        if (settings.KdsUrl is not null)
        {
            options.AmdKdsBaseUrl = settings.KdsUrl;
        }

        if (settings.CacheDirectory is not null)
        {
            options.CacheDirectory = settings.CacheDirectory;
        }

        var http = new HttpClient();
        var cache = new CollateralHttpCache(http, options);
        var tdx = new TdxVerifier(new TdxPcsCollateralProvider(cache, options.IntelPcsBaseUrl, options.IntelCertificatesBaseUrl, tdxFiles));
        var snp = new SnpVerifier(new SnpKdsCertificateProvider(cache, options.AmdKdsBaseUrl, snpFiles));
        return new VerifierFactory(tdx, snp, http);
    }

    public IEvidenceVerifier For(TeeKind kind) => kind == TeeKind.Tdx ? Tdx : Snp;

    public void Dispose() => _http?.Dispose();
}
