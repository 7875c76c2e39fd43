using AttestBroker.Evidence;

namespace AttestBroker.Agent.Providers;

/// <summary>Where <see cref="EvidenceProviders"/> looks when detecting (overridable for tests and unusual mounts).</summary>
public sealed class EvidenceProviderPaths
{
    public string ConfigfsRoot { get; init; } = ConfigfsTsmProvider.DefaultRoot;

    public IReadOnlyList<string> TdxDevices { get; init; } = [TdxGuestIoctlProvider.DefaultDevice, TdxGuestIoctlProvider.LegacyDevice];

    public string SevDevice { get; init; } = SevGuestIoctlProvider.DefaultDevice;
}

/// <summary>
/// Picks the evidence provider: named (<c>configfs</c>, <c>configfs:DIR</c>, <c>tdx-ioctl</c>, <c>sev-ioctl</c>,
/// <c>sim:URL</c>) or detected in this order: configfs-tsm when its report directory exists, then /dev/tdx_guest,
/// then /dev/sev-guest.
/// </summary>
public static class EvidenceProviders
{
    public const string Usage = "configfs, configfs:DIR, tdx-ioctl, sev-ioctl or sim:URL";

    /// <summary>The provider for <paramref name="spec"/> (null or "auto": detect). <paramref name="simulatorTee"/> is the TEE the simulator emulates (default TDX).</summary>
    /// <exception cref="EvidenceProviderException">InvalidRequest for a bad specification; NotAvailable when detection finds nothing.</exception>
    public static IEvidenceProvider Create(string? spec, TeeKind? simulatorTee = null, EvidenceProviderPaths? paths = null)
    {
        paths ??= new EvidenceProviderPaths();
        var s = spec?.Trim();
        if (string.IsNullOrEmpty(s) || s == "auto")
        {
            return Detect(paths);
        }

        if (s == "configfs" || s == "configfs-tsm")
        {
            return new ConfigfsTsmProvider(paths.ConfigfsRoot);
        }

        if (s.StartsWith("configfs:", StringComparison.Ordinal))
        {
            var root = s["configfs:".Length..];
            return root.Length > 0 ? new ConfigfsTsmProvider(root) : throw Invalid(spec!);
        }

        if (s == "tdx-ioctl")
        {
            var device = paths.TdxDevices.FirstOrDefault(File.Exists) ?? paths.TdxDevices[0];
            return new TdxGuestIoctlProvider(device);
        }

        if (s == "sev-ioctl")
        {
            return new SevGuestIoctlProvider(paths.SevDevice);
        }

        if (s.StartsWith("sim:", StringComparison.Ordinal))
        {
            var url = s["sim:".Length..];
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                throw new EvidenceProviderException(EvidenceProviderError.InvalidRequest, $"--evidence {spec}: \"{url}\" is not an http(s) URL of attest-sim serve");
            }

            return new SimulatorProvider(uri, simulatorTee ?? TeeKind.Tdx);
        }

        throw Invalid(spec!);
    }

    /// <summary>The first interface present: configfs-tsm, /dev/tdx_guest, /dev/sev-guest.</summary>
    public static IEvidenceProvider Detect(EvidenceProviderPaths? paths = null)
    {
        paths ??= new EvidenceProviderPaths();
        if (ConfigfsTsmProvider.IsPresent(paths.ConfigfsRoot))
        {
            return new ConfigfsTsmProvider(paths.ConfigfsRoot);
        }

        if (paths.TdxDevices.FirstOrDefault(File.Exists) is { } tdx)
        {
            return new TdxGuestIoctlProvider(tdx);
        }

        if (File.Exists(paths.SevDevice))
        {
            return new SevGuestIoctlProvider(paths.SevDevice);
        }

        throw new EvidenceProviderException(
            EvidenceProviderError.NotAvailable,
            $"no evidence interface found: no {paths.ConfigfsRoot}, no {string.Join(" or ", paths.TdxDevices)}, no {paths.SevDevice}. " +
            "Run inside a TDX or SEV-SNP guest with configfs mounted (or the device exposed to the container), or name one with --evidence (sim:URL for the simulator)");
    }

    private static EvidenceProviderException Invalid(string spec) =>
        new(EvidenceProviderError.InvalidRequest, $"--evidence \"{spec}\" is not one of {Usage}");
}
