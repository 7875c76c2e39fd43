using System.Security.Cryptography;

namespace AttestBroker.Storage;

/// <summary>Used-nonce store: each nonce can be consumed once, across every replica sharing the database.</summary>
public interface IReplayStore
{
    /// <summary>
    /// Records <paramref name="nonceId"/> as used. Returns false when it was already used (by any replica) or has
    /// already expired. A single unique insert, so concurrent callers race safely: exactly one gets true.
    /// </summary>
    Task<bool> TryConsumeAsync(string nonceId, DateTimeOffset expiresAt, CancellationToken cancellationToken = default);

    /// <summary>Deletes used nonces whose expiry has passed; returns how many.</summary>
    Task<int> PurgeExpiredAsync(CancellationToken cancellationToken = default);
}

/// <summary>Append-only, hash-chained audit log.</summary>
public interface IAuditLog
{
    /// <summary>Appends the event at the end of the chain (serialised across replicas).</summary>
    Task<AuditRecord> AppendAsync(AuditEvent auditEvent, CancellationToken cancellationToken = default);

    /// <summary>Signs the current head with an ECDSA P-256 key and stores the signed head.</summary>
    Task<SignedAuditHead> SignHeadAsync(ECDsa signingKey, CancellationToken cancellationToken = default);

    /// <summary>
    /// Walks the chain and reports the first broken row and why. When <paramref name="headKey"/> is given, every
    /// stored signed head is checked against it and against the chain (detecting rewritten or truncated chains).
    /// </summary>
    Task<AuditVerification> VerifyAsync(ECDsa? headKey = null, CancellationToken cancellationToken = default);

    /// <summary>Writes every row as one JSON object per line.</summary>
    Task<long> ExportAsync(Stream output, CancellationToken cancellationToken = default);

    /// <summary>Reads rows with sequence in [fromSequence, fromSequence + count).</summary>
    Task<IReadOnlyList<AuditRecord>> ReadAsync(long fromSequence, int count, CancellationToken cancellationToken = default);

    /// <summary>The last row of the chain, or null when the log is empty.</summary>
    Task<AuditRecord?> GetLastAsync(CancellationToken cancellationToken = default);

    /// <summary>Stored signed heads, oldest first.</summary>
    Task<IReadOnlyList<SignedAuditHead>> ReadHeadsAsync(CancellationToken cancellationToken = default);
}

/// <summary>Named policy documents with their full history. Documents are opaque text.</summary>
public interface IPolicyStore
{
    /// <summary>Stores a new version; returns it (versions start at 1 and increase by 1 per name).</summary>
    Task<PolicyVersion> SetAsync(string name, string document, string author, string? comment = null, CancellationToken cancellationToken = default);

    Task<PolicyVersion?> GetCurrentAsync(string name, CancellationToken cancellationToken = default);

    Task<PolicyVersion?> GetVersionAsync(string name, long version, CancellationToken cancellationToken = default);

    /// <summary>Every version of the policy, oldest first.</summary>
    Task<IReadOnlyList<PolicyVersion>> HistoryAsync(string name, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<string>> ListNamesAsync(CancellationToken cancellationToken = default);
}

/// <summary>Wrapped model keys and their metadata.</summary>
public interface IKeyRecordStore
{
    /// <summary>Inserts a new key; <see cref="StorageError.AlreadyExists"/> when the id is taken.</summary>
    Task InsertAsync(KeyRecord record, CancellationToken cancellationToken = default);

    Task<KeyRecord?> GetAsync(string keyId, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<KeyRecord>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>Sets the state; false when the key does not exist.</summary>
    Task<bool> SetStateAsync(string keyId, KeyState state, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces the wrapped bytes only if the record is still wrapped under (expectedKekId, expectedKekVersion):
    /// a compare-and-swap, so concurrent rotations never lose a write. False when the record changed or is gone.
    /// </summary>
    Task<bool> ReplaceWrappingAsync(string keyId, string expectedKekId, int expectedKekVersion, byte[] wrapped, string kekId, int kekVersion, DateTimeOffset rotatedAt, CancellationToken cancellationToken = default);
}

/// <summary>Collateral cache: url or cache key to body, headers and freshness limit.</summary>
public interface ICollateralStore
{
    Task PutAsync(CollateralEntry entry, CancellationToken cancellationToken = default);

    /// <summary>The stored entry (fresh or not; the caller compares FreshUntil), or null; a damaged entry is a miss.</summary>
    Task<CollateralEntry?> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Deletes entries whose freshness limit is before <paramref name="before"/>; returns how many.</summary>
    Task<int> PurgeStaleAsync(DateTimeOffset before, CancellationToken cancellationToken = default);
}

/// <summary>The broker's storage: one database, five stores, versioned migrations.</summary>
public interface IBrokerStorage : IAsyncDisposable
{
    /// <summary>"sqlite" or "postgres".</summary>
    string Provider { get; }

    /// <summary>Applies pending migrations in one transaction (idempotent; serialised across replicas).</summary>
    Task<MigrationResult> MigrateAsync(CancellationToken cancellationToken = default);

    /// <summary>Highest applied migration, 0 when none.</summary>
    Task<int> SchemaVersionAsync(CancellationToken cancellationToken = default);

    IReplayStore Replay { get; }

    IAuditLog Audit { get; }

    IPolicyStore Policies { get; }

    IKeyRecordStore Keys { get; }

    ICollateralStore Collateral { get; }
}
