namespace AttestBroker.Server;

/// <summary>
/// Which database the broker uses ("Broker:Storage"). SQLite in the data directory by default; PostgreSQL for
/// several replicas. The connection string may hold a password: it is never logged nor put in a message.
/// </summary>
public sealed class BrokerStorageOptions
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";

    /// <summary>"sqlite" (default: <c>attestbroker.db</c> in the data directory) or "postgres".</summary>
    public string Provider { get; set; } = Sqlite;

    /// <summary>Npgsql connection string (PostgreSQL); e.g. from the environment variable <c>Broker__Storage__ConnectionString</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>A file holding the Npgsql connection string (a mounted secret); used when <see cref="ConnectionString"/> is not set.</summary>
    public string? ConnectionStringFile { get; set; }

    /// <summary>PostgreSQL schema holding the tables (default "attestbroker").</summary>
    public string Schema { get; set; } = AttestBroker.Storage.PostgresStorage.DefaultSchema;

    public bool IsPostgres =>
        string.Equals(Provider, Postgres, StringComparison.OrdinalIgnoreCase) || string.Equals(Provider, "postgresql", StringComparison.OrdinalIgnoreCase);

    /// <summary>The connection string from the setting or the file; throws <see cref="BrokerStartupException"/> naming the setting (never the value).</summary>
    public string ResolveConnectionString()
    {
        if (!string.IsNullOrWhiteSpace(ConnectionString))
        {
            return ConnectionString;
        }

        if (string.IsNullOrWhiteSpace(ConnectionStringFile))
        {
            throw new BrokerStartupException("Broker:Storage:Provider is postgres but neither Broker:Storage:ConnectionString nor Broker:Storage:ConnectionStringFile is set");
        }

        try
        {
            var info = new FileInfo(ConnectionStringFile);
            if (!info.Exists || info.Length > 8192)
            {
                throw new BrokerStartupException($"Broker:Storage:ConnectionStringFile {ConnectionStringFile} does not exist or is larger than 8192 bytes");
            }

            var text = File.ReadAllText(ConnectionStringFile).Trim();
            return text.Length == 0
                ? throw new BrokerStartupException($"Broker:Storage:ConnectionStringFile {ConnectionStringFile} is empty")
                : text;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new BrokerStartupException($"Broker:Storage:ConnectionStringFile {ConnectionStringFile} cannot be read ({ex.GetType().Name})", ex);
        }
    }
}

/// <summary>
/// Where the broker's secrets come from ("Broker:Secrets"): the KEK that wraps model keys, the challenge MAC secret,
/// the token-signing key, and the admin API's audit-head and local admin signing keys. By default they live in the
/// data directory and are made on the first start. Replicas on one database must share them, so a PostgreSQL-backed
/// broker refuses to start unless each is given by the operator (an existing file or directory, or an environment
/// variable; the admin signing key only when the local admin signer is on), or <see cref="AllowGeneratedSecrets"/> is set.
/// </summary>
public sealed class BrokerSecretsOptions
{
    /// <summary>KEK directory (<c>kek-v{N}.bin</c>, 0600) shared by the replicas; default <c>&lt;data&gt;/kek</c>. Given explicitly, it must already hold a KEK.</summary>
    public string? KekDirectory { get; set; }

    /// <summary>Environment variable holding the KEK (base64 of 32 bytes, or <c>1:b64,2:b64</c>), e.g. ATTESTBROKER_KEK; wins over <see cref="KekDirectory"/>.</summary>
    public string? KekEnvironmentVariable { get; set; }

    /// <summary>The challenge MAC secret (exactly 32 bytes, 0600); default <c>&lt;data&gt;/nonce.key</c>. Given explicitly, it must exist.</summary>
    public string? NonceSecretFile { get; set; }

    /// <summary>Environment variable holding the challenge MAC secret as base64 of 32 bytes; wins over <see cref="NonceSecretFile"/>.</summary>
    public string? NonceSecretEnvironmentVariable { get; set; }

    /// <summary>The ES256 token-signing key (PKCS#8 DER, 0600); default <c>&lt;data&gt;/token-signing.key</c>. Given explicitly, it must exist.</summary>
    public string? TokenSigningKeyFile { get; set; }

    /// <summary>Environment variable holding the token-signing key as PKCS#8 PEM or base64 DER; wins over <see cref="TokenSigningKeyFile"/>.</summary>
    public string? TokenSigningKeyEnvironmentVariable { get; set; }

    /// <summary>
    /// The admin API's local token-signing key (P-256 PKCS#8 DER or PEM, 0600); default <c>&lt;data&gt;/admin-signing.key</c>.
    /// Given explicitly, it must exist. Needed on a PostgreSQL broker only when Broker:Admin:LocalSigner is true.
    /// </summary>
    public string? AdminSigningKeyFile { get; set; }

    /// <summary>The key that signs the audit chain heads (P-256 PKCS#8 DER or PEM, 0600); default <c>&lt;data&gt;/audit-head.key</c>. Given explicitly, it must exist.</summary>
    public string? AuditHeadKeyFile { get; set; }

    /// <summary>Let a PostgreSQL-backed broker make its own secrets in its data directory (one replica only: others could not open its keys, challenges or tokens).</summary>
    public bool AllowGeneratedSecrets { get; set; }
}
