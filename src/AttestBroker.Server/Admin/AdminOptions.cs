namespace AttestBroker.Server.Admin;

/// <summary>
/// Settings of the admin API (<c>Broker:Admin</c>): who may sign admin tokens, the audience they must carry, and the
/// periodic signing of the audit chain head. Validated at start-up with the rest of <see cref="BrokerOptions"/>.
/// </summary>
public sealed class AdminOptions
{
    /// <summary>The <c>aud</c> every admin token must carry.</summary>
    public string Audience { get; set; } = AdminTokens.DefaultAudience;

    /// <summary>
    /// Trust tokens signed with the data directory's <c>admin-signing.key</c> (P-256, made on first use; minted by
    /// <c>attestbroker admin token</c>) with <c>iss</c> = <see cref="AdminTokens.LocalIssuer"/>. On by default, so
    /// single-machine use needs no identity provider.
    /// </summary>
    public bool LocalSigner { get; set; } = true;

    /// <summary>
    /// An OpenID Connect issuer (https, or http on a loopback address) whose signing keys are read from the
    /// <c>jwks_uri</c> of <c>&lt;issuer&gt;/.well-known/openid-configuration</c>; tokens must carry this exact <c>iss</c>.
    /// </summary>
    public string? OidcIssuer { get; set; }

    /// <summary>Timeout of each request to the OIDC issuer, in seconds (1 .. 60).</summary>
    public int OidcTimeoutSeconds { get; set; } = 10;

    /// <summary>How long fetched OIDC signing keys are used before they are fetched again, in seconds (60 .. 86400).</summary>
    public int OidcKeysLifetimeSeconds { get; set; } = 3600;

    /// <summary>PEM public keys (EC P-256 for ES256, RSA of at least 2048 bits for RS256) that sign admin tokens.</summary>
    public IList<string> PublicKeyFiles { get; } = [];

    /// <summary>The <c>iss</c> of tokens signed by <see cref="PublicKeyFiles"/> (required with them).</summary>
    public string? PublicKeyIssuer { get; set; }

    /// <summary>Clock skew allowed on <c>exp</c>, <c>nbf</c> and <c>iat</c>, in seconds (0 .. 300).</summary>
    public int ClockSkewSeconds { get; set; } = 60;

    /// <summary>How often the audit chain head is signed with <c>audit-head.key</c>, in seconds (1 .. 86400).</summary>
    public int AuditHeadIntervalSeconds { get; set; } = 60;

    /// <summary>Every failure, each naming the setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(Audience))
        {
            yield return "Broker:Admin:Audience must not be empty";
        }

        if (OidcIssuer is not null && !OidcKeySource.IsAcceptableUrl(OidcIssuer))
        {
            yield return "Broker:Admin:OidcIssuer must be an absolute https URL (http only on a loopback address)";
        }

        if (OidcTimeoutSeconds is < 1 or > 60)
        {
            yield return "Broker:Admin:OidcTimeoutSeconds must be 1 .. 60";
        }

        if (OidcKeysLifetimeSeconds is < 60 or > 86400)
        {
            yield return "Broker:Admin:OidcKeysLifetimeSeconds must be 60 .. 86400";
        }

        if (PublicKeyFiles.Count > 0 && string.IsNullOrWhiteSpace(PublicKeyIssuer))
        {
            yield return "Broker:Admin:PublicKeyIssuer is required with Broker:Admin:PublicKeyFiles";
        }

        if (PublicKeyIssuer is not null && PublicKeyIssuer == AdminTokens.LocalIssuer)
        {
            yield return $"Broker:Admin:PublicKeyIssuer must not be {AdminTokens.LocalIssuer} (reserved for the local signing key)";
        }

        if (PublicKeyIssuer is not null && OidcIssuer is not null && PublicKeyIssuer == OidcIssuer)
        {
            yield return "Broker:Admin:PublicKeyIssuer must differ from Broker:Admin:OidcIssuer";
        }

        foreach (var file in PublicKeyFiles)
        {
            if (!File.Exists(file))
            {
                yield return $"Broker:Admin:PublicKeyFiles: {file} does not exist";
            }
        }

        if (ClockSkewSeconds is < 0 or > 300)
        {
            yield return "Broker:Admin:ClockSkewSeconds must be 0 .. 300";
        }

        if (AuditHeadIntervalSeconds is < 1 or > 86400)
        {
            yield return "Broker:Admin:AuditHeadIntervalSeconds must be 1 .. 86400";
        }
    }
}
