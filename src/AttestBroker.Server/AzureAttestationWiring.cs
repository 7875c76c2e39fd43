using AttestBroker.Verification.Azure;

namespace AttestBroker.Server;

/// <summary>
/// The handler the broker fetches the Azure Attestation instance's signing keys through. Registered in the host's
/// services it replaces the default (e.g. a proxy, or in tests a handler trusting a local fake instance's certificate).
/// </summary>
public sealed class AzureAttestationHttpHandler
{
    public AzureAttestationHttpHandler(Func<HttpMessageHandler> create)
    {
        Create = create ?? throw new ArgumentNullException(nameof(create));
    }

    public Func<HttpMessageHandler> Create { get; }
}

/// <summary>Broker:AzureAttestation at start-up: validation and the verifier (null when off).</summary>
public static class AzureAttestationWiring
{
    /// <summary>Longest time one fetch of {instance}/certs may take before the request answers 503.</summary>
    public static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(10);

    public static IEnumerable<string> Validate(AzureAttestationOptions? options)
    {
        if (options is null || !options.Enabled)
        {
            yield break;
        }

        string? error = null;
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            error = "Broker:AzureAttestation: " + e.Message.Split(" (Parameter", 2)[0].Replace("Azure Attestation: ", string.Empty, StringComparison.Ordinal);
        }

        if (error is not null)
        {
            yield return error;
        }

        if (options.KeyCacheLifetime > TimeSpan.FromDays(7))
        {
            yield return "Broker:AzureAttestation:KeyCacheLifetime must be at most 7 days (the instance rolls its signing keys)";
        }

        if (options.ClockSkew > TimeSpan.FromMinutes(10))
        {
            yield return "Broker:AzureAttestation:ClockSkew must be at most 10 minutes";
        }
    }

    /// <summary>The verifier and the HttpClient it owns (the caller disposes it), or nulls when Azure tokens are off.</summary>
    public static (AzureAttestationTokenVerifier? Verifier, HttpClient? Http) Create(AzureAttestationOptions? options, TimeProvider time, AzureAttestationHttpHandler? handler)
    {
        if (options is null || !options.Enabled)
        {
            return (null, null);
        }

        var http = handler is null ? new HttpClient() : new HttpClient(handler.Create(), disposeHandler: true);
        http.Timeout = FetchTimeout;
        return (new AzureAttestationTokenVerifier(options, http, time), http);
    }
}
