using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Agent;
using AttestBroker.Agent.Broker;
using AttestBroker.Agent.Providers;
using AttestBroker.Evidence;
using AttestBroker.Models;

namespace AttestBroker.Cli.Commands;

/// <summary>A key release that did not happen: the exit code (1 denied or failed, 3 broker unavailable) and a message without key material.</summary>
internal sealed class KeyReleaseException : Exception
{
    public KeyReleaseException(int exitCode, string message)
        : base(message)
    {
        ExitCode = exitCode;
    }

    public KeyReleaseException()
    {
    }

    public KeyReleaseException(string message)
        : base(message)
    {
    }

    public KeyReleaseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public int ExitCode { get; } = ExitCodes.Failure;
}

/// <summary>
/// Where a decrypting command gets the model key: <c>--key-file FILE</c> (or "-" for standard input), or
/// <c>--broker URL</c>, which attests from inside this TEE through the agent library (<see cref="KeyFetcher"/>) and
/// takes the released key in memory. The options are the agent's (<c>attestbroker agent fetch-key</c>), so a node helper
/// and an agent are configured the same way.
/// </summary>
internal sealed class ModelKeySource
{
    /// <summary>Exit code when the broker stayed unavailable through every retry (as <c>agent fetch-key</c>).</summary>
    public const int Unavailable = AgentCommand.Unavailable;

    private readonly Option<string?> _keyFile = new("--key-file") { Description = "File holding the 32-byte model key, raw or as base64 text (\"-\" reads standard input)." };
    private readonly Option<string?> _broker = new("--broker") { Description = "Broker base URL (https://...): attest from inside this TEE and take the released key in memory (never written to a file)." };
    private readonly Option<string?> _evidence = new("--evidence") { Description = "With --broker: evidence provider configfs, configfs:DIR, tdx-ioctl, sev-ioctl or sim:URL. Default: detected." };
    private readonly Option<string?> _tee = new("--tee") { Description = "With --broker and --evidence sim:URL: tdx (default) or sev-snp." };
    private readonly Option<string?> _caCert = new("--ca-cert") { Description = "With --broker: PEM file of the certificates to trust for the broker instead of the system store." };
    private readonly Option<string?> _saToken = new("--service-account-token-file") { Description = $"With --broker: the pod's service account token (default {AgentCommand.DefaultServiceAccountTokenFile} when present)." };
    private readonly Option<int> _retries = new("--retries") { Description = "With --broker: retries while the broker is unavailable, with backoff (default 5).", DefaultValueFactory = _ => 5 };
    private readonly Option<bool> _allowHttp = new("--allow-http") { Description = "With --broker: allow a plain http:// broker URL (test brokers only)." };

    public ModelKeySource()
    {
        _tee.AcceptOnlyFromAmong(TeeKindNames.Tdx, TeeKindNames.SevSnp);
    }

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.Options.Add(_keyFile);
        command.Options.Add(_broker);
        command.Options.Add(_evidence);
        command.Options.Add(_tee);
        command.Options.Add(_caCert);
        command.Options.Add(_saToken);
        command.Options.Add(_retries);
        command.Options.Add(_allowHttp);
    }

    /// <summary>Refuses a missing or doubled key source, and broker options without --broker, before anything else happens.</summary>
    public void Validate(ParseResult parse, string? keyId)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var keyFile = parse.GetValue(_keyFile);
        var broker = parse.GetValue(_broker);
        if (keyFile is not null && broker is not null)
        {
            throw new CliUsageException("give either --key-file or --broker, not both");
        }

        if (keyFile is null && broker is null)
        {
            throw new CliUsageException("give the key source: --key-file FILE or --broker URL");
        }

        if (broker is null)
        {
            foreach (var option in new Option[] { _evidence, _tee, _caCert, _saToken, _retries, _allowHttp })
            {
                if (parse.GetResult(option) is { Implicit: false })
                {
                    throw new CliUsageException($"{option.Name} applies to --broker only");
                }
            }

            return;
        }

        if (keyId is null)
        {
            throw new CliUsageException("--broker needs --key-id: the key to ask the broker for");
        }

        if (!Uri.TryCreate(broker, UriKind.Absolute, out _))
        {
            throw new CliUsageException($"--broker: \"{broker}\" is not an absolute URL");
        }

        if (parse.GetValue(_retries) is < 0 or > 100)
        {
            throw new CliUsageException("--retries must be 0 .. 100");
        }
    }

    /// <summary>
    /// The model key, in pinned memory the caller owns (and zeroes by disposing). With --broker, attests and fetches
    /// <paramref name="keyId"/>; the agent's copy of the released key is zeroed before this returns.
    /// Throws <see cref="CliUsageException"/> for usage problems and <see cref="KeyReleaseException"/> when the release did not happen.
    /// </summary>
    public async Task<ModelKey> GetAsync(ParseResult parse, string? keyId, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(error);
        Validate(parse, keyId);
        if (parse.GetValue(_keyFile) is { } keyFile)
        {
            return ModelDecryptCommand.LoadKeyFile(keyFile);
        }

        return await FetchFromBrokerAsync(parse, keyId!, error, cancellationToken).ConfigureAwait(false);
    }

    private async Task<ModelKey> FetchFromBrokerAsync(ParseResult parse, string keyId, TextWriter error, CancellationToken cancellationToken)
    {
        var brokerUrl = new Uri(parse.GetValue(_broker)!, UriKind.Absolute);
        var request = new KeyFetchRequest { KeyIds = [keyId], ServiceAccountToken = AgentCommand.ReadServiceAccountToken(parse.GetValue(_saToken)) };
        try
        {
            request.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new CliUsageException("--key-id: " + ex.Message);
        }

        var trusted = AgentCommand.LoadTrustedCertificates(parse.GetValue(_caCert));
        IEvidenceProvider provider;
        try
        {
            provider = AgentCommand.CreateEvidenceProvider(parse.GetValue(_evidence), parse.GetValue(_tee));
        }
        catch (EvidenceProviderException ex)
        {
            throw new KeyReleaseException(ExitCodes.Failure, "evidence: " + ex.Message);
        }

        var maxRetries = parse.GetValue(_retries);
        BrokerClient client;
        try
        {
            client = AgentCommand.CreateBrokerClient(brokerUrl, trusted, parse.GetValue(_allowHttp), maxRetries, error);
        }
        catch (CliUsageException)
        {
            (provider as IDisposable)?.Dispose();
            throw;
        }

        using (client)
        using (provider as IDisposable)
        {
            FetchedKeys keys;
            try
            {
                keys = await new KeyFetcher(client, provider).FetchAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (BrokerProblemException ex)
            {
                throw new KeyReleaseException(ExitCodes.Failure, AgentCommand.DescribeDenial(ex));
            }
            catch (BrokerUnavailableException ex)
            {
                throw new KeyReleaseException(Unavailable, "broker unavailable: " + ex.Message);
            }
            catch (Exception ex) when (ex is BrokerResponseException or EvidenceProviderException)
            {
                throw new KeyReleaseException(ExitCodes.Failure, ex.Message);
            }

            using (keys)
            {
                try
                {
                    return ModelKey.FromBytes(keys.GetKey(keyId).Span);
                }
                catch (ModelException ex)
                {
                    throw new KeyReleaseException(ExitCodes.Failure, $"the broker released key \"{keyId}\" but it is not a model key: {ex.Message}");
                }
            }
        }
    }
}
