using System.CommandLine;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Server;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// Where an admin command acts: locally on a data directory (<c>--data-dir</c>) or over HTTPS on a running broker's
/// admin API (<c>--broker URL</c> with <c>--token</c> or <c>ATTESTBROKER_ADMIN_TOKEN</c>). Exactly one.
/// </summary>
internal sealed class AdminTarget
{
    public const string TokenVariable = "ATTESTBROKER_ADMIN_TOKEN";

    public Option<string?> DataDir { get; } = new("--data-dir") { Description = "Act locally on this broker data directory." };

    public Option<string?> Broker { get; } = new("--broker") { Description = "Act through the admin API of the broker at this URL (e.g. https://broker.example:8443)." };

    public Option<string?> Token { get; } = new("--token") { Description = $"Admin bearer token for --broker (default: ${TokenVariable}); 'attestbroker admin token' mints one." };

    public Option<string?> CaCert { get; } = new("--ca-cert") { Description = "PEM certificate(s) to trust for the broker's TLS certificate (e.g. its self-signed development certificate)." };

    public Option<bool> Insecure { get; } = new("--insecure-skip-tls-verify") { Description = "Do not verify the broker's TLS certificate. Development only: anyone on the path can read the token." };

    /// <summary>Adds the options to <paramref name="command"/>; <paramref name="remoteOnly"/> leaves out --data-dir.</summary>
    public Command AddTo(Command command, bool remoteOnly = false)
    {
        if (!remoteOnly)
        {
            command.Options.Add(DataDir);
        }

        command.Options.Add(Broker);
        command.Options.Add(Token);
        command.Options.Add(CaCert);
        command.Options.Add(Insecure);
        return command;
    }

    /// <summary>The data directory when acting locally, or null when --broker was given; a usage error unless exactly one.</summary>
    public string? LocalDataDir(ParseResult parse, bool remoteOnly = false)
    {
        var dir = remoteOnly ? null : parse.GetValue(DataDir);
        var broker = parse.GetValue(Broker);
        if ((dir is null) == (broker is null))
        {
            throw new CliUsageException(remoteOnly ? "--broker URL is required" : "give exactly one of --data-dir DIR (local) and --broker URL (admin API)");
        }

        if (dir is not null && (parse.GetValue(Token) is not null || parse.GetValue(CaCert) is not null || parse.GetValue(Insecure)))
        {
            throw new CliUsageException("--token, --ca-cert and --insecure-skip-tls-verify go with --broker, not --data-dir");
        }

        return dir;
    }

    public AdminHttp Connect(ParseResult parse)
    {
        var url = parse.GetValue(Broker)!;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var baseUri) || (baseUri.Scheme != Uri.UriSchemeHttps && baseUri.Scheme != Uri.UriSchemeHttp))
        {
            throw new CliUsageException($"--broker: {url} is not an http(s) URL");
        }

        var token = parse.GetValue(Token) ?? Environment.GetEnvironmentVariable(TokenVariable);
        if (string.IsNullOrWhiteSpace(token))
        {
            throw new CliUsageException($"--broker needs an admin token: --token TOKEN or ${TokenVariable}");
        }

        var error = parse.InvocationConfiguration.Error;
        var insecure = parse.GetValue(Insecure);
        var caCert = parse.GetValue(CaCert);
        if (insecure && caCert is not null)
        {
            throw new CliUsageException("--ca-cert and --insecure-skip-tls-verify exclude each other");
        }

        if (insecure)
        {
            error.WriteLine("WARNING: --insecure-skip-tls-verify: the broker's TLS certificate is NOT verified; anyone on the path can read the admin token. Development only.");
        }

        if (baseUri.Scheme == Uri.UriSchemeHttp && !baseUri.IsLoopback)
        {
            error.WriteLine("WARNING: --broker uses plain http: the admin token travels unencrypted.");
        }

        return new AdminHttp(baseUri, token.Trim(), caCert, insecure);
    }
}

/// <summary>A response of the admin API: the status, the JSON body (or problem), the raw text.</summary>
internal sealed record AdminResponse(int Status, JsonNode? Json, string Text)
{
    public bool Ok => Status is >= 200 and < 300;
}

/// <summary>An HTTPS client for the admin API. Problems map to exit codes: 401/403/5xx → 1, other 4xx → 2, unreachable → 2.</summary>
internal sealed class AdminHttp : IDisposable
{
    private readonly HttpClient _client;
    private readonly X509Certificate2Collection? _roots;

    public AdminHttp(Uri baseUri, string token, string? caCertFile, bool insecure)
    {
        var handler = new SocketsHttpHandler();
        if (caCertFile is not null)
        {
            _roots = new X509Certificate2Collection();
            try
            {
                _roots.ImportFromPemFile(caCertFile);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
            {
                throw new CliUsageException($"--ca-cert: {caCertFile} holds no PEM certificate", ex);
            }

            if (_roots.Count == 0)
            {
                throw new CliUsageException($"--ca-cert: {caCertFile} holds no PEM certificate");
            }

            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) => ValidateWithRoots(cert, errors);
        }
        else if (insecure)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        }

        var path = baseUri.AbsolutePath.EndsWith('/') ? baseUri.AbsolutePath : baseUri.AbsolutePath + "/";
        _client = new HttpClient(handler) { BaseAddress = new UriBuilder(baseUri) { Path = path }.Uri, Timeout = TimeSpan.FromSeconds(60) };
        _client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        BaseUri = baseUri;
    }

    public Uri BaseUri { get; }

    /// <summary>
    /// The broker presents exactly one of the given certificates (pinned, e.g. its self-signed development certificate,
    /// as the agent's client accepts it), or a chain that ends in one of them with a matching host name.
    /// </summary>
    private bool ValidateWithRoots(X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            return false;
        }

        var presented = certificate.GetRawCertData();
        if (_roots!.Any(r => r.RawData.AsSpan().SequenceEqual(presented)))
        {
            return true;
        }

        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_roots!);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = X509CertificateLoader.LoadCertificate(presented);
        return chain.Build(leaf);
    }

    public Task<AdminResponse> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<AdminResponse> PostJsonAsync(string path, JsonNode? body, CancellationToken ct) =>
        SendAsync(HttpMethod.Post, path, body is null ? null : Content(body.ToJsonString(), "application/json"), ct);

    public static StringContent Content(string text, string mediaType)
    {
        var content = new StringContent(text, new UTF8Encoding(false));
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType) { CharSet = "utf-8" };
        return content;
    }

    public async Task<AdminResponse> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, new Uri(path.TrimStart('/'), UriKind.Relative)) { Content = content };
        try
        {
            using var response = await _client.SendAsync(request, ct).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            JsonNode? json = null;
            if (response.Content.Headers.ContentType?.MediaType is "application/json" or "application/problem+json" && text.Length > 0)
            {
                try
                {
                    json = JsonNode.Parse(text);
                }
                catch (System.Text.Json.JsonException)
                {
                    json = null;
                }
            }

            return new AdminResponse((int)response.StatusCode, json, text);
        }
        catch (HttpRequestException ex)
        {
            throw new CliUsageException($"--broker: cannot reach {BaseUri}: {ex.Message}", ex);
        }
        catch (TaskCanceledException ex) when (!ct.IsCancellationRequested)
        {
            throw new CliUsageException($"--broker: {BaseUri} did not answer in time", ex);
        }
    }

    /// <summary>Prints a failed response's problem (title and detail, never a stack trace) and returns its exit code.</summary>
    public static async Task<int> FailAsync(AdminResponse response, TextWriter error)
    {
        var title = (string?)response.Json?["title"] ?? "HTTP " + response.Status;
        var detail = (string?)response.Json?["detail"];
        var code = (string?)response.Json?["code"];
        var line = new StringBuilder("error: ").Append(response.Status).Append(' ').Append(title);
        if (detail is not null)
        {
            line.Append(": ").Append(detail);
        }

        if (code is not null)
        {
            line.Append(" (").Append(code).Append(')');
        }

        await error.WriteLineAsync(line.ToString()).ConfigureAwait(false);
        if (response.Json?["path"] is JsonValue path && (string?)path is { Length: > 0 } p)
        {
            await error.WriteLineAsync("  at: " + p).ConfigureAwait(false);
        }

        return response.Status is 401 or 403 or >= 500 ? ExitCodes.Failure : ExitCodes.Usage;
    }

    public void Dispose() => _client.Dispose();
}

/// <summary>Parses <c>--lifetime</c> values: a number and a unit, s, m, h or d (e.g. 15m).</summary>
internal static class Durations
{
    public static TimeSpan Parse(string text, string option)
    {
        if (text.Length >= 2 && long.TryParse(text.AsSpan(0, text.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            var span = text[^1] switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                _ => (TimeSpan?)null,
            };
            if (span is { } s)
            {
                return s;
            }
        }

        throw new CliUsageException($"{option}: {text} is not a duration such as 30s, 15m, 8h or 1d");
    }
}

/// <summary>Text helpers shared by the admin commands.</summary>
internal static class AdminText
{
    public static string KeyLine(JsonNode k)
    {
        var policy = k["policy_version"] is null ? "no policy (never released)" : $"policy version {(long)k["policy_version"]!}";
        var state = (string?)k["state"] == "enabled" ? "Enabled" : "Disabled";
        return $"{(string?)k["id"]}\t{state}\t{policy}\tbackend {(string?)k["backend"] ?? "embedded"}";
    }

    public static string KeyPath(string id) => "v1/admin/keys/" + Uri.EscapeDataString(id);

    public static string PolicyPath(string keyId) => "v1/admin/policies/" + Uri.EscapeDataString(keyId);

    /// <summary>A usage error for a bad --broker value, surfaced from <see cref="BrokerStartupException"/>.</summary>
    public static CliUsageException Usage(BrokerStartupException ex) => new(ex.Message, ex);
}
