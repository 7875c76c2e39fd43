using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Keys;
using AttestBroker.Models;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker model encrypt --broker URL</c>: a fresh random model key, made in memory, encrypts the model and is
/// imported into the broker through the admin API (<c>POST /v1/admin/keys/{id}/import</c>, role key-admin). The key
/// is never written anywhere and is zeroed after use.
/// <para>
/// Order, so that nothing is lost or leaked: (1) check the arguments, the output directory and that the key id is free
/// (<c>GET /v1/admin/keys/{id}</c> answers 404; this also checks the token and the TLS trust before any work);
/// (2) encrypt into a hidden sibling of <c>--out</c>; (3) import the key; (4) only then rename the sibling to
/// <c>--out</c>. Any failure before the import succeeds deletes the sibling, so <c>--out</c> never holds a model
/// whose key the broker does not have. An existing key id is never overwritten: the broker answers 409 and the
/// command exits 1 with its problem.
/// </para>
/// </summary>
internal sealed class ModelKeyImport
{
    private const int MaxTokenFileBytes = 16 * 1024;

    private readonly Option<string?> _tokenFile = new("--token-file") { Description = $"With --broker: file holding the admin bearer token (role key-admin) (default: ${AdminTarget.TokenVariable})." };
    private readonly Option<string?> _caCert = new("--ca-cert") { Description = "With --broker: PEM certificate(s) to trust for the broker's TLS certificate instead of the system store (the exact certificate is pinned, or a chain must end in one of them)." };
    private readonly Option<bool> _insecure = new("--insecure-skip-tls-verify") { Description = "With --broker: do not verify the broker's TLS certificate. Development only: anyone on the path can read the token and the model key." };
    private readonly Option<bool> _allowHttp = new("--allow-http") { Description = "With --broker: allow a plain http:// broker URL (test brokers only: the model key would travel unencrypted)." };
    private readonly Option<string?> _backend = new("--backend") { Description = "With --broker: the broker's key backend to import into (Broker:KeyBackends; default: the broker's default backend)." };

    public ModelKeyImport(Option<string?> broker)
    {
        Broker = broker;
    }

    public Option<string?> Broker { get; }

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.Options.Add(_tokenFile);
        command.Options.Add(_caCert);
        command.Options.Add(_insecure);
        command.Options.Add(_allowHttp);
        command.Options.Add(_backend);
    }

    /// <summary>Without --broker, the broker options are usage errors.</summary>
    public void RefuseWithoutBroker(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        foreach (var option in new Option[] { _tokenFile, _caCert, _insecure, _allowHttp, _backend })
        {
            if (parse.GetResult(option) is { Implicit: false })
            {
                throw new CliUsageException($"{option.Name} applies to --broker only");
            }
        }
    }

    /// <summary>Runs steps 1 to 4 (see the type's summary). Returns the exit code.</summary>
    public async Task<int> EncryptAndImportAsync(ParseResult parse, string source, string output, string keyId, ECDsa? signer, int segmentSize, CiphertextTreeHash treeHash, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var stdout = parse.InvocationConfiguration.Output;
        var error = parse.InvocationConfiguration.Error;
        if (!EmbeddedKeyStore.IsValidKeyId(keyId))
        {
            throw new CliUsageException("--key-id: with --broker the id must be a broker key id: 1 .. 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit");
        }

        var backend = parse.GetValue(_backend);
        if (backend is not null && backend != EmbeddedKeyStore.DefaultBackendName && !Server.KeyBackendsOptions.IsBackendName(backend))
        {
            throw new CliUsageException("--backend: a backend name is 1 .. 63 lowercase letters, digits and '-', starting with a letter");
        }

        var (finalDir, stagingDir) = Destinations(source, output);
        using var http = Connect(parse, error);

        // 1. The id must be free. The same GET proves the token, the role's reach and the TLS trust before any work.
        var existing = await http.GetAsync(AdminText.KeyPath(keyId), ct).ConfigureAwait(false);
        if (existing.Ok)
        {
            await error.WriteLineAsync($"error: key id '{keyId}' already exists in the broker (created {(string?)existing.Json?["created_at"] ?? "earlier"}): a new model key needs a new id; nothing was encrypted").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        if (existing.Status != 404 || (string?)existing.Json?["code"] != "unknown-key")
        {
            return await FailAsync(existing, error).ConfigureAwait(false);
        }

        var raw = GC.AllocateArray<byte>(ModelKey.Length, pinned: true);
        byte[]? body = null;
        var imported = false;
        try
        {
            RandomNumberGenerator.Fill(raw);
            ModelManifest manifest;
            using (var key = ModelKey.FromBytes(raw))
            {
                // 2. Encrypt into the staging directory (removed on any failure below).
                Directory.CreateDirectory(Path.GetDirectoryName(stagingDir)!);
                manifest = await ModelEncryptor.EncryptDirectoryAsync(source, stagingDir, key, keyId, signer, segmentSize, treeHash, ct).ConfigureAwait(false);
            }

            // 3. Import. The body is the only other copy of the key; both are zeroed in finally.
            body = ImportBody(raw, backend);
            CryptographicOperations.ZeroMemory(raw);
            AdminResponse response;
            using (var content = new ByteArrayContent(body))
            {
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                try
                {
                    response = await http.SendAsync(HttpMethod.Post, AdminText.KeyPath(keyId) + "/import", content, ct).ConfigureAwait(false);
                }
                catch (CliUsageException ex)
                {
                    throw new CliUsageException($"{ex.Message}; the import's outcome is unknown, so the encrypted model was deleted. If 'attestbroker admin key list' shows '{keyId}', disable it (it encrypts nothing) and encrypt again under a new id", ex);
                }
            }

            if (!response.Ok)
            {
                return await FailAsync(response, error).ConfigureAwait(false);
            }

            imported = true;

            // 4. Publish the ciphertext under --out.
            try
            {
                if (Directory.Exists(finalDir))
                {
                    Directory.Delete(finalDir, recursive: false); // empty (checked above); fails if something arrived since
                }

                Directory.Move(stagingDir, finalDir);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"error: the key was imported under id '{keyId}' but the encrypted model could not be moved to {output}: {ex.Message}. It is complete at {stagingDir}: move it there yourself").ConfigureAwait(false);
                return ExitCodes.Usage;
            }

            var bytes = manifest.Files.Sum(f => f.Size);
            var where = response.Json?["backend"] is { } storedIn ? $"backend {(string?)storedIn}, " : string.Empty;
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"encrypted {manifest.Files.Count} files ({bytes} bytes) under key id '{manifest.KeyId}'{(signer is null ? ", manifest not signed" : ", manifest signed")}; imported the key into the broker at {http.BaseUri} ({where}KEK version {(int?)response.Json?["kek_version"]})")).ConfigureAwait(false);
            return ExitCodes.Success;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(raw);
            if (body is not null)
            {
                CryptographicOperations.ZeroMemory(body);
            }

            if (!imported)
            {
                await DeleteStagingAsync(stagingDir, error).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The full --out path and its staging sibling; refuses an --out that is not empty or lies inside the model.</summary>
    private static (string Final, string Staging) Destinations(string source, string output)
    {
        var final = Path.TrimEndingDirectorySeparator(Path.GetFullPath(output));
        var src = Path.TrimEndingDirectorySeparator(Path.GetFullPath(source));
        if (!Directory.Exists(src))
        {
            throw new CliUsageException($"model directory {source} does not exist");
        }

        if (final == src || final.StartsWith(src + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new CliUsageException("--out must not be inside the model directory");
        }

        if (File.Exists(final) || (Directory.Exists(final) && Directory.EnumerateFileSystemEntries(final).Any()))
        {
            throw new CliUsageException($"--out: {output} exists and is not an empty directory");
        }

        var parent = Path.GetDirectoryName(final) ?? throw new CliUsageException($"--out: {output} has no parent directory");
        var staging = Path.Combine(parent, "." + Path.GetFileName(final) + ".partial-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        return (final, staging);
    }

    private static async Task DeleteStagingAsync(string staging, TextWriter error)
    {
        try
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Ciphertext only (the key was never written); say where it is rather than hide it.
            await error.WriteLineAsync($"warning: could not delete {staging}: {ex.Message}").ConfigureAwait(false);
        }
    }

    private AdminHttp Connect(ParseResult parse, TextWriter error)
    {
        var url = parse.GetValue(Broker)!;
        var allowHttp = parse.GetValue(_allowHttp);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var baseUri) || (baseUri.Scheme != Uri.UriSchemeHttps && baseUri.Scheme != Uri.UriSchemeHttp))
        {
            throw new CliUsageException($"--broker: {url} is not an https URL");
        }

        if (baseUri.Scheme == Uri.UriSchemeHttp && !allowHttp)
        {
            throw new CliUsageException("--broker: the model key travels to the broker; give an https:// URL (--allow-http for a test broker only)");
        }

        var insecure = parse.GetValue(_insecure);
        var caCert = parse.GetValue(_caCert);
        if (insecure && caCert is not null)
        {
            throw new CliUsageException("--ca-cert and --insecure-skip-tls-verify exclude each other");
        }

        var token = ReadToken(parse.GetValue(_tokenFile));
        if (insecure)
        {
            error.WriteLine("WARNING: --insecure-skip-tls-verify: the broker's TLS certificate is NOT verified; anyone on the path can read the admin token and the model key. Development only.");
        }

        if (baseUri.Scheme == Uri.UriSchemeHttp)
        {
            error.WriteLine("WARNING: --allow-http: the admin token and the model key travel unencrypted.");
        }

        return new AdminHttp(baseUri, token, caCert, insecure);
    }

    private static string ReadToken(string? tokenFile)
    {
        string? token;
        if (tokenFile is null)
        {
            token = Environment.GetEnvironmentVariable(AdminTarget.TokenVariable);
            if (string.IsNullOrWhiteSpace(token))
            {
                throw new CliUsageException($"--broker needs an admin token with the key-admin role: --token-file FILE or ${AdminTarget.TokenVariable}");
            }
        }
        else
        {
            try
            {
                var info = new FileInfo(tokenFile);
                if (!info.Exists || info.Length > MaxTokenFileBytes)
                {
                    throw new CliUsageException($"--token-file: {tokenFile} does not exist or is larger than {MaxTokenFileBytes} bytes");
                }

                token = File.ReadAllText(tokenFile);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CliUsageException($"--token-file: cannot read {tokenFile}: {ex.Message}", ex);
            }
        }

        token = token.Trim();
        if (token.Length == 0 || token.Any(char.IsWhiteSpace) || token.Any(char.IsControl))
        {
            throw new CliUsageException(tokenFile is null ? $"${AdminTarget.TokenVariable} does not hold one token" : $"--token-file: {tokenFile} does not hold one token");
        }

        return token;
    }

    /// <summary>A refused request: the broker's problem on one line; 401, 403, 409 and 5xx exit 1, other answers 2.</summary>
    private static async Task<int> FailAsync(AdminResponse response, TextWriter error)
    {
        var code = await AdminHttp.FailAsync(response, error).ConfigureAwait(false);
        return response.Status == 409 ? ExitCodes.Failure : code;
    }

    /// <summary>
    /// <c>{"key":"&lt;base64&gt;"[,"backend":"NAME"]}</c> as UTF-8 in pinned memory, without an intermediate string of
    /// the key. The backend name was checked (lowercase letters, digits, '-'), so it needs no JSON escaping. The caller zeroes it.
    /// </summary>
    /// <summary>
    /// The admin import body <c>{"key":"base64"[,"backend":"name"]}</c> in a pinned array the caller zeroes. The backend
    /// name has been checked (lowercase letters, digits, '-'), so it needs no JSON escaping.
    /// </summary>
    internal static byte[] ImportBody(ReadOnlySpan<byte> key, string? backend)
    {
        var prefix = "{\"key\":\""u8;
        var suffix = backend is null ? "\"}"u8.ToArray() : System.Text.Encoding.UTF8.GetBytes("\",\"backend\":\"" + backend + "\"}");
        var encoded = System.Buffers.Text.Base64.GetMaxEncodedToUtf8Length(key.Length);
        var body = GC.AllocateArray<byte>(prefix.Length + encoded + suffix.Length, pinned: true);
        prefix.CopyTo(body);
        System.Buffers.Text.Base64.EncodeToUtf8(key, body.AsSpan(prefix.Length), out _, out _);
        suffix.CopyTo(body.AsSpan(prefix.Length + encoded));
        return body;
    }
}
