using System.Buffers;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Storage;

/// <summary>Which write path a transaction serialises (PostgreSQL: one advisory lock each; SQLite: the database write lock).</summary>
internal enum WriteLock
{
    Migration = 1,
    Audit = 2,
    Policies = 3,
}

internal sealed record Migration(int Version, string Name, string Sql);

/// <summary>
/// The stores over ADO.NET, shared by the SQLite and PostgreSQL providers. Both accept the same SQL for every
/// data statement (named @parameters, ON CONFLICT); the providers differ in connections, write serialisation,
/// constraint-violation detection and DDL.
/// </summary>
public abstract class SqlStorage : IBrokerStorage, IReplayStore, IAuditLog, IPolicyStore, IKeyRecordStore, ICollateralStore
{
    public const int MaxIdLength = 512;
    public const int MaxPolicyBytes = 1024 * 1024;
    public const int MaxCollateralBytes = 16 * 1024 * 1024;

    private const string EnabledText = "enabled";
    private const string DisabledText = "disabled";

    private protected SqlStorage(TimeProvider? time)
    {
        Time = time ?? TimeProvider.System;
    }

    public abstract string Provider { get; }

    protected TimeProvider Time { get; }

    public IReplayStore Replay => this;

    public IAuditLog Audit => this;

    public IPolicyStore Policies => this;

    public IKeyRecordStore Keys => this;

    public ICollateralStore Collateral => this;

    internal abstract IReadOnlyList<Migration> Migrations { get; }

    /// <summary>SQL returning 1 row when the schema_version table exists.</summary>
    internal abstract string SchemaVersionExistsSql { get; }

    internal abstract Task<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>Begins a transaction that holds the given write lock until commit or rollback.</summary>
    internal abstract Task<DbTransaction> BeginWriteAsync(DbConnection connection, WriteLock writeLock, CancellationToken cancellationToken);

    internal abstract bool IsUniqueViolation(DbException exception);

    /// <summary>Runs inside the migration transaction before schema_version is read (PostgreSQL creates its schema).</summary>
    internal virtual Task PrepareMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs before the migration transaction (SQLite switches to WAL, which cannot happen inside one).</summary>
    internal virtual Task BeforeMigrationAsync(DbConnection connection, CancellationToken cancellationToken) => Task.CompletedTask;

    public abstract ValueTask DisposeAsync();

    // ---------------------------------------------------------------- migrations

    public Task<MigrationResult> MigrateAsync(CancellationToken cancellationToken = default) => Run(async () =>
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await BeforeMigrationAsync(c, cancellationToken).ConfigureAwait(false);
        await using DbTransaction tx = await BeginWriteAsync(c, WriteLock.Migration, cancellationToken).ConfigureAwait(false);
        await PrepareMigrationAsync(c, tx, cancellationToken).ConfigureAwait(false);
        await ExecAsync(c, tx, "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)", cancellationToken).ConfigureAwait(false);

        var applied = new HashSet<long>();
        await using (DbCommand cmd = Command(c, tx, "SELECT version FROM schema_version"))
        await using (DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                applied.Add(r.GetInt64(0));
            }
        }

        int known = Migrations.Max(m => m.Version);
        if (applied.Count > 0 && applied.Max() > known)
        {
            throw new StorageException(StorageError.SchemaTooNew, $"the database schema is at version {applied.Max()} but this build knows versions up to {known}; upgrade the broker");
        }

        var done = new List<int>();
        foreach (Migration m in Migrations.OrderBy(m => m.Version))
        {
            if (applied.Contains(m.Version))
            {
                continue;
            }

            await ExecAsync(c, tx, m.Sql, cancellationToken).ConfigureAwait(false);
            await using DbCommand record = Command(c, tx, "INSERT INTO schema_version (version, name, applied_ms) VALUES (@v, @n, @t)",
                ("v", (long)m.Version), ("n", m.Name), ("t", NowMs()));
            await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            done.Add(m.Version);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new MigrationResult(Math.Max(known, applied.Count > 0 ? (int)applied.Max() : 0), done);
    });

    public Task<int> SchemaVersionAsync(CancellationToken cancellationToken = default) => Run(async () =>
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (DbCommand exists = Command(c, null, SchemaVersionExistsSql))
        {
            if (await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is null)
            {
                return 0;
            }
        }

        await using DbCommand cmd = Command(c, null, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
        return (int)Convert.ToInt64(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
    });

    // ---------------------------------------------------------------- replay store

    public virtual Task<bool> TryConsumeAsync(string nonceId, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        RequireId(nonceId, nameof(nonceId));
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            return await TryConsumeCoreAsync(c, null, nonceId, expiresAt, cancellationToken).ConfigureAwait(false);
        });
    }

    /// <summary>Records a nonce as used on <paramref name="c"/> (inside <paramref name="tx"/> when given): true the first time, false after, or when expired.</summary>
    private protected async Task<bool> TryConsumeCoreAsync(DbConnection c, DbTransaction? tx, string nonceId, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        long now = NowMs();
        if (expiresAt.ToUnixTimeMilliseconds() <= now)
        {
            return false; // an expired nonce is never accepted, whether or not it was recorded
        }

        await using DbCommand cmd = Command(c, tx,
            "INSERT INTO used_nonces (nonce_id, expires_ms, used_ms) VALUES (@n, @e, @u) ON CONFLICT (nonce_id) DO NOTHING",
            ("n", nonceId), ("e", expiresAt.ToUnixTimeMilliseconds()), ("u", now));
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    private protected static void RequireNonceId(string nonceId) => RequireId(nonceId, nameof(nonceId));

    public Task<int> PurgeExpiredAsync(CancellationToken cancellationToken = default) => Run(async () =>
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using DbCommand cmd = Command(c, null, "DELETE FROM used_nonces WHERE expires_ms <= @now", ("now", NowMs()));
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    });

    // ---------------------------------------------------------------- audit log

    public virtual Task<AuditRecord> AppendAsync(AuditEvent auditEvent, CancellationToken cancellationToken = default)
    {
        byte[] json = AuditChain.CanonicalJson(auditEvent);
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbTransaction tx = await BeginWriteAsync(c, WriteLock.Audit, cancellationToken).ConfigureAwait(false);
            AuditRecord record = await AppendCoreAsync(c, tx, auditEvent, json, cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return record;
        });
    }

    /// <summary>Appends one row after the chain head, inside <paramref name="tx"/>, which must hold the audit write lock.</summary>
    private protected async Task<AuditRecord> AppendCoreAsync(DbConnection c, DbTransaction tx, AuditEvent auditEvent, byte[] json, CancellationToken cancellationToken)
    {
        string text = AuditChain.Utf8(json);
        (long lastSeq, byte[] lastHash) = await ReadChainHeadAsync(c, tx, cancellationToken).ConfigureAwait(false);
        long seq = lastSeq + 1;
        byte[] hash = AuditChain.ComputeRowHash(seq, lastHash, json);
        await using DbCommand cmd = Command(c, tx,
            "INSERT INTO audit_log (seq, prev_hash, hash, kind, at_ms, event_json) VALUES (@s, @p, @h, @k, @t, @j)",
            ("s", seq), ("p", lastHash), ("h", hash), ("k", auditEvent.Kind), ("t", auditEvent.Time.ToUnixTimeMilliseconds()), ("j", text));
        try
        {
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (DbException e) when (IsUniqueViolation(e))
        {
            // The unique sequence and previous-hash constraints refuse a fork even if the lock were bypassed.
            throw new StorageException(StorageError.Conflict, "another writer appended to the audit chain concurrently; retry", e);
        }

        return new AuditRecord(seq, lastHash, hash, auditEvent.Kind, DateTimeOffset.FromUnixTimeMilliseconds(auditEvent.Time.ToUnixTimeMilliseconds()), text);
    }

    public Task<SignedAuditHead> SignHeadAsync(ECDsa signingKey, CancellationToken cancellationToken = default)
    {
        AuditChain.RequireP256(signingKey);
        string signer = AuditChain.SignerKeyId(signingKey);
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbTransaction tx = await BeginWriteAsync(c, WriteLock.Audit, cancellationToken).ConfigureAwait(false);
            (long seq, byte[] hash) = await ReadChainHeadAsync(c, tx, cancellationToken).ConfigureAwait(false);
            DateTimeOffset at = DateTimeOffset.FromUnixTimeMilliseconds(NowMs());
            byte[] signature = signingKey.SignData(AuditChain.HeadMessage(seq, hash, at), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            await using DbCommand cmd = Command(c, tx,
                "INSERT INTO audit_heads (seq, head_hash, signature, key_id, signed_ms) VALUES (@s, @h, @g, @k, @t)",
                ("s", seq), ("h", hash), ("g", signature), ("k", signer), ("t", at.ToUnixTimeMilliseconds()));
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new SignedAuditHead(seq, hash, signature, signer, at);
        });
    }

    public Task<IReadOnlyList<SignedAuditHead>> ReadHeadsAsync(CancellationToken cancellationToken = default) => Run(async () =>
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ReadHeadsCoreAsync(c, cancellationToken).ConfigureAwait(false);
    });

    public Task<AuditRecord?> GetLastAsync(CancellationToken cancellationToken = default) => Run(async () =>
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using DbCommand cmd = Command(c, null, "SELECT seq, prev_hash, hash, kind, at_ms, event_json FROM audit_log ORDER BY seq DESC LIMIT 1");
        await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new AuditRecord(r.GetInt64(0), r.GetFieldValue<byte[]>(1), r.GetFieldValue<byte[]>(2), r.GetString(3),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)), r.GetString(5))
            : null;
    });

    public Task<IReadOnlyList<AuditRecord>> ReadAsync(long fromSequence, int count, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbCommand cmd = Command(c, null,
                "SELECT seq, prev_hash, hash, kind, at_ms, event_json FROM audit_log WHERE seq >= @f ORDER BY seq LIMIT @n",
                ("f", fromSequence), ("n", (long)count));
            await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            var list = new List<AuditRecord>();
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                list.Add(new AuditRecord(r.GetInt64(0), r.GetFieldValue<byte[]>(1), r.GetFieldValue<byte[]>(2), r.GetString(3),
                    DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)), r.GetString(5)));
            }

            return (IReadOnlyList<AuditRecord>)list;
        });
    }

    public Task<AuditVerification> VerifyAsync(ECDsa? headKey = null, CancellationToken cancellationToken = default)
    {
        if (headKey is not null)
        {
            AuditChain.RequireP256(headKey);
        }

        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            IReadOnlyList<SignedAuditHead> heads = await ReadHeadsCoreAsync(c, cancellationToken).ConfigureAwait(false);
            var headSequences = heads.Select(h => h.Sequence).ToHashSet();
            var rowHashes = new Dictionary<long, byte[]>();

            long expected = 1;
            byte[] previous = AuditChain.GenesisHash.ToArray();
            AuditBreak? chainBreak = null;
            (long Seq, byte[] Prev, bool SelfConsistent)? brokenLink = null;

            await using (DbCommand cmd = Command(c, null, "SELECT seq, prev_hash, hash, event_json FROM audit_log ORDER BY seq"))
            await using (DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    long seq = r.GetInt64(0);
                    byte[] prev = r.GetFieldValue<byte[]>(1);
                    byte[] hash = r.GetFieldValue<byte[]>(2);
                    byte[] json = Encoding.UTF8.GetBytes(r.GetString(3));

                    if (seq != expected)
                    {
                        chainBreak = new AuditBreak(expected, AuditBreakKind.Deleted,
                            seq > expected
                                ? $"rows {expected}..{seq - 1} are missing"
                                : $"row {seq} appears where row {expected} was expected");
                        break;
                    }

                    if (prev.Length != AuditChain.HashLength || hash.Length != AuditChain.HashLength)
                    {
                        chainBreak = new AuditBreak(seq, AuditBreakKind.Edited, $"row {seq} has a malformed hash column");
                        break;
                    }

                    bool selfConsistent = CryptographicOperations.FixedTimeEquals(AuditChain.ComputeRowHash(seq, prev, json), hash);
                    if (!CryptographicOperations.FixedTimeEquals(prev, previous))
                    {
                        brokenLink = (seq, prev, selfConsistent);
                        break;
                    }

                    if (!selfConsistent)
                    {
                        chainBreak = new AuditBreak(seq, AuditBreakKind.Edited, $"row {seq}'s content does not match its hash");
                        break;
                    }

                    if (headSequences.Contains(seq))
                    {
                        rowHashes[seq] = hash;
                    }

                    previous = hash;
                    expected++;
                }
            }

            if (brokenLink is { } link)
            {
                chainBreak = await ClassifyBrokenLinkAsync(c, link.Seq, link.Prev, link.SelfConsistent, cancellationToken).ConfigureAwait(false);
            }

            // Heads were read before the rows, so every honest head is at or below the last row streamed;
            // rows appended concurrently after that are simply not part of this verification.
            long verifiedUpTo = expected - 1;
            long lastSequence = verifiedUpTo;
            if (chainBreak is not null)
            {
                await using DbCommand max = Command(c, null, "SELECT COALESCE(MAX(seq), 0) FROM audit_log");
                lastSequence = Convert.ToInt64(await max.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            }

            int headsChecked = 0;
            AuditBreak? headBreak = null;
            if (headKey is not null)
            {
                foreach (SignedAuditHead head in heads)
                {
                    AuditBreak? b = CheckHead(head, headKey, rowHashes, verifiedUpTo, chainBreak is not null);
                    headsChecked++;
                    if (b is not null && (headBreak is null || b.Sequence < headBreak.Sequence))
                    {
                        headBreak = b;
                    }
                }
            }

            AuditBreak? first = chainBreak;
            if (headBreak is not null && (first is null || headBreak.Sequence < first.Sequence))
            {
                first = headBreak;
            }

            return new AuditVerification(verifiedUpTo, lastSequence, headsChecked, first);
        });
    }

    private static AuditBreak? CheckHead(SignedAuditHead head, ECDsa key, Dictionary<long, byte[]> rowHashes, long verifiedEnd, bool chainBroken)
    {
        // A head is reported at the first row it vouches for that is not as signed.
        long at = Math.Max(head.Sequence, 1);
        if (head.HeadHash.Length != AuditChain.HashLength || head.Sequence < 0)
        {
            return new AuditBreak(at, AuditBreakKind.HeadSignatureInvalid, $"signed head for row {head.Sequence} is malformed");
        }

        byte[] message = AuditChain.HeadMessage(head.Sequence, head.HeadHash, head.SignedAt);
        if (!key.VerifyData(message, head.Signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
        {
            return new AuditBreak(at, AuditBreakKind.HeadSignatureInvalid,
                $"the signature on the head for row {head.Sequence} (signed {AuditChain.FormatTime(head.SignedAt)}) does not verify with the given key");
        }

        if (head.Sequence == 0)
        {
            return CryptographicOperations.FixedTimeEquals(head.HeadHash, AuditChain.GenesisHash)
                ? null
                : new AuditBreak(1, AuditBreakKind.HeadSignatureInvalid, "signed head for the empty log carries a non-zero hash");
        }

        if (head.Sequence > verifiedEnd)
        {
            return chainBroken
                ? null // the chain is already broken before this head; that break is earlier
                : new AuditBreak(verifiedEnd + 1, AuditBreakKind.Deleted,
                    $"a signed head vouches for row {head.Sequence} but the log ends at row {verifiedEnd}: rows were removed from the end");
        }

        return rowHashes.TryGetValue(head.Sequence, out byte[]? actual) && CryptographicOperations.FixedTimeEquals(actual, head.HeadHash)
            ? null
            : new AuditBreak(head.Sequence, AuditBreakKind.Edited,
                $"row {head.Sequence}'s hash differs from the signed head: the chain up to it was rewritten");
    }

    private async Task<AuditBreak> ClassifyBrokenLinkAsync(DbConnection c, long seq, byte[] prev, bool selfConsistent, CancellationToken cancellationToken)
    {
        await using DbCommand cmd = Command(c, null, "SELECT seq FROM audit_log WHERE hash = @h", ("h", prev));
        object? found = await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        if (found is not null and not DBNull)
        {
            long at = Convert.ToInt64(found, System.Globalization.CultureInfo.InvariantCulture);
            return new AuditBreak(seq, AuditBreakKind.Reordered, $"row {seq} links to the row now at {at}, not to row {seq - 1}");
        }

        if (selfConsistent && seq > 1)
        {
            return new AuditBreak(seq - 1, AuditBreakKind.Edited, $"row {seq - 1} was changed and re-hashed: row {seq} commits to a different hash");
        }

        return new AuditBreak(seq, AuditBreakKind.Deleted, $"row {seq} links to a row that is no longer in the log (a row was removed and later rows renumbered)");
    }

    public Task<long> ExportAsync(Stream output, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbCommand cmd = Command(c, null, "SELECT seq, prev_hash, hash, event_json FROM audit_log ORDER BY seq");
            await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            var line = new ArrayBufferWriter<byte>(1024);
            long n = 0;
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                line.ResetWrittenCount();
                string eventJson = r.GetString(3);
                using (var w = new Utf8JsonWriter(line))
                {
                    w.WriteStartObject();
                    w.WriteNumber("seq", r.GetInt64(0));
                    w.WriteString("prev_hash", Convert.ToHexStringLower(r.GetFieldValue<byte[]>(1)));
                    w.WriteString("hash", Convert.ToHexStringLower(r.GetFieldValue<byte[]>(2)));
                    if (IsJson(eventJson))
                    {
                        w.WritePropertyName("event");
                        w.WriteRawValue(eventJson, skipInputValidation: true);
                    }
                    else
                    {
                        w.WriteString("event_invalid_json", eventJson);
                    }

                    w.WriteEndObject();
                }

                line.Write("\n"u8);
                await output.WriteAsync(line.WrittenMemory, cancellationToken).ConfigureAwait(false);
                n++;
            }

            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            return n;
        });
    }

    private static bool IsJson(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static async Task<(long Seq, byte[] Hash)> ReadChainHeadAsync(DbConnection c, DbTransaction tx, CancellationToken cancellationToken)
    {
        await using DbCommand cmd = Command(c, tx, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1");
        await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? (r.GetInt64(0), r.GetFieldValue<byte[]>(1))
            : (0, AuditChain.GenesisHash.ToArray());
    }

    private static async Task<IReadOnlyList<SignedAuditHead>> ReadHeadsCoreAsync(DbConnection c, CancellationToken cancellationToken)
    {
        await using DbCommand cmd = Command(c, null, "SELECT seq, head_hash, signature, key_id, signed_ms FROM audit_heads ORDER BY id");
        await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<SignedAuditHead>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new SignedAuditHead(r.GetInt64(0), r.GetFieldValue<byte[]>(1), r.GetFieldValue<byte[]>(2), r.GetString(3),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4))));
        }

        return list;
    }

    // ---------------------------------------------------------------- policies

    public Task<PolicyVersion> SetAsync(string name, string document, string author, string? comment = null, CancellationToken cancellationToken = default)
    {
        RequireId(name, nameof(name));
        RequireId(author, nameof(author));
        ArgumentNullException.ThrowIfNull(document);
        if (Encoding.UTF8.GetByteCount(document) > MaxPolicyBytes)
        {
            throw new ArgumentException($"policy document is larger than {MaxPolicyBytes} bytes", nameof(document));
        }

        string digest = Sha256Hex(document);
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbTransaction tx = await BeginWriteAsync(c, WriteLock.Policies, cancellationToken).ConfigureAwait(false);
            long version;
            await using (DbCommand max = Command(c, tx, "SELECT COALESCE(MAX(version), 0) FROM policies WHERE name = @n", ("n", name)))
            {
                version = Convert.ToInt64(await max.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture) + 1;
            }

            long now = NowMs();
            await using DbCommand cmd = Command(c, tx,
                "INSERT INTO policies (name, version, document, sha256, author, comment, created_ms) VALUES (@n, @v, @d, @h, @a, @c, @t)",
                ("n", name), ("v", version), ("d", document), ("h", digest), ("a", author), ("c", comment), ("t", now));
            try
            {
                await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DbException e) when (IsUniqueViolation(e))
            {
                throw new StorageException(StorageError.Conflict, $"policy '{name}' version {version} was written concurrently; retry", e);
            }

            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new PolicyVersion(name, version, document, digest, author, DateTimeOffset.FromUnixTimeMilliseconds(now), comment);
        });
    }

    public Task<PolicyVersion?> GetCurrentAsync(string name, CancellationToken cancellationToken = default)
    {
        RequireId(name, nameof(name));
        return Run(async () => (await QueryPoliciesAsync("WHERE name = @n ORDER BY version DESC LIMIT 1", cancellationToken, ("n", name)).ConfigureAwait(false)).FirstOrDefault());
    }

    public Task<PolicyVersion?> GetVersionAsync(string name, long version, CancellationToken cancellationToken = default)
    {
        RequireId(name, nameof(name));
        return Run(async () => (await QueryPoliciesAsync("WHERE name = @n AND version = @v", cancellationToken, ("n", name), ("v", version)).ConfigureAwait(false)).FirstOrDefault());
    }

    public Task<IReadOnlyList<PolicyVersion>> HistoryAsync(string name, CancellationToken cancellationToken = default)
    {
        RequireId(name, nameof(name));
        return Run(async () => (IReadOnlyList<PolicyVersion>)await QueryPoliciesAsync("WHERE name = @n ORDER BY version", cancellationToken, ("n", name)).ConfigureAwait(false));
    }

    public Task<IReadOnlyList<string>> ListNamesAsync(CancellationToken cancellationToken = default) => Run(async () =>
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using DbCommand cmd = Command(c, null, "SELECT DISTINCT name FROM policies ORDER BY name");
        await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<string>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(r.GetString(0));
        }

        return (IReadOnlyList<string>)list;
    });

    private async Task<List<PolicyVersion>> QueryPoliciesAsync(string where, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using DbCommand cmd = Command(c, null, "SELECT name, version, document, sha256, author, comment, created_ms FROM policies " + where, parameters);
        await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<PolicyVersion>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var p = new PolicyVersion(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)), r.IsDBNull(5) ? null : r.GetString(5));
            if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Sha256Hex(p.Document)), Encoding.ASCII.GetBytes(p.Sha256Hex)))
            {
                throw new StorageException(StorageError.Corrupt, $"policy '{p.Name}' version {p.Version} does not match its stored SHA-256");
            }

            list.Add(p);
        }

        return list;
    }

    // ---------------------------------------------------------------- key records

    public Task InsertAsync(KeyRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        RequireId(record.KeyId, nameof(record));
        ArgumentNullException.ThrowIfNull(record.Wrapped);
        RequireId(record.WrappingKeyId, nameof(record));
        RequireId(record.Backend, nameof(record));
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbCommand cmd = Command(c, null,
                "INSERT INTO key_records (key_id, wrapped, kek_id, kek_version, state, backend, created_ms, rotated_ms, disabled_ms) " +
                "VALUES (@k, @w, @ki, @kv, @s, @b, @c, @r, @d)",
                ("k", record.KeyId), ("w", record.Wrapped), ("ki", record.WrappingKeyId), ("kv", (long)record.WrappingKeyVersion),
                ("s", StateText(record.State)), ("b", record.Backend), ("c", record.CreatedAt.ToUnixTimeMilliseconds()),
                ("r", record.RotatedAt?.ToUnixTimeMilliseconds()), ("d", record.DisabledAt?.ToUnixTimeMilliseconds()));
            try
            {
                await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DbException e) when (IsUniqueViolation(e))
            {
                throw new StorageException(StorageError.AlreadyExists, $"key '{record.KeyId}' already exists", e);
            }

            return true;
        });
    }

    public Task<KeyRecord?> GetAsync(string keyId, CancellationToken cancellationToken = default)
    {
        RequireId(keyId, nameof(keyId));
        return Run(async () => (await QueryKeysAsync("WHERE key_id = @k", cancellationToken, ("k", keyId)).ConfigureAwait(false)).FirstOrDefault());
    }

    public Task<IReadOnlyList<KeyRecord>> ListAsync(CancellationToken cancellationToken = default) =>
        Run(async () => (IReadOnlyList<KeyRecord>)await QueryKeysAsync("ORDER BY key_id", cancellationToken).ConfigureAwait(false));

    public Task<bool> SetStateAsync(string keyId, KeyState state, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        RequireId(keyId, nameof(keyId));
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbCommand cmd = Command(c, null,
                "UPDATE key_records SET state = @s, disabled_ms = @d WHERE key_id = @k",
                ("s", StateText(state)), ("d", state == KeyState.Disabled ? at.ToUnixTimeMilliseconds() : null), ("k", keyId));
            return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        });
    }

    public Task<bool> ReplaceWrappingAsync(string keyId, string expectedKekId, int expectedKekVersion, byte[] wrapped, string kekId, int kekVersion, DateTimeOffset rotatedAt, CancellationToken cancellationToken = default)
    {
        RequireId(keyId, nameof(keyId));
        ArgumentNullException.ThrowIfNull(wrapped);
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbCommand cmd = Command(c, null,
                "UPDATE key_records SET wrapped = @w, kek_id = @ki, kek_version = @kv, rotated_ms = @r " +
                "WHERE key_id = @k AND kek_id = @eki AND kek_version = @ekv",
                ("w", wrapped), ("ki", kekId), ("kv", (long)kekVersion), ("r", rotatedAt.ToUnixTimeMilliseconds()),
                ("k", keyId), ("eki", expectedKekId), ("ekv", (long)expectedKekVersion));
            return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        });
    }

    private async Task<List<KeyRecord>> QueryKeysAsync(string tail, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using DbCommand cmd = Command(c, null,
            "SELECT key_id, wrapped, kek_id, kek_version, state, backend, created_ms, rotated_ms, disabled_ms FROM key_records " + tail, parameters);
        await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<KeyRecord>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            string state = r.GetString(4);
            KeyState parsed = state switch
            {
                EnabledText => KeyState.Enabled,
                DisabledText => KeyState.Disabled,
                _ => throw new StorageException(StorageError.Corrupt, $"key '{r.GetString(0)}' has an unknown state"),
            };
            list.Add(new KeyRecord(r.GetString(0), r.GetFieldValue<byte[]>(1), r.GetString(2), checked((int)r.GetInt64(3)), parsed, r.GetString(5),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)),
                r.IsDBNull(7) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(7)),
                r.IsDBNull(8) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(8))));
        }

        return list;
    }

    private static string StateText(KeyState s) => s switch
    {
        KeyState.Enabled => EnabledText,
        KeyState.Disabled => DisabledText,
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    // ---------------------------------------------------------------- collateral cache

    public Task PutAsync(CollateralEntry entry, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        RequireId(entry.Key, nameof(entry));
        ArgumentNullException.ThrowIfNull(entry.Body);
        if (entry.Body.Length > MaxCollateralBytes)
        {
            throw new ArgumentException($"collateral body is larger than {MaxCollateralBytes} bytes", nameof(entry));
        }

        string headers = HeadersJson(entry.Headers);
        byte[] digest = SHA256.HashData(entry.Body);
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbCommand cmd = Command(c, null,
                "INSERT INTO collateral (cache_key, body, body_sha256, headers_json, fetched_ms, fresh_until_ms) VALUES (@k, @b, @h, @j, @f, @u) " +
                "ON CONFLICT (cache_key) DO UPDATE SET body = excluded.body, body_sha256 = excluded.body_sha256, headers_json = excluded.headers_json, " +
                "fetched_ms = excluded.fetched_ms, fresh_until_ms = excluded.fresh_until_ms",
                ("k", entry.Key), ("b", entry.Body), ("h", digest), ("j", headers),
                ("f", entry.FetchedAt.ToUnixTimeMilliseconds()), ("u", entry.FreshUntil.ToUnixTimeMilliseconds()));
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return true;
        });
    }

    Task<CollateralEntry?> ICollateralStore.GetAsync(string key, CancellationToken cancellationToken) => CollateralGetAsync(key, cancellationToken);

    private Task<CollateralEntry?> CollateralGetAsync(string key, CancellationToken cancellationToken)
    {
        RequireId(key, nameof(key));
        return Run(async () =>
        {
            await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using DbCommand cmd = Command(c, null,
                "SELECT body, body_sha256, headers_json, fetched_ms, fresh_until_ms FROM collateral WHERE cache_key = @k", ("k", key));
            await using DbDataReader r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            byte[] body = r.GetFieldValue<byte[]>(0);
            byte[] digest = r.GetFieldValue<byte[]>(1);
            if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(body), digest))
            {
                return null; // a damaged entry is a miss
            }

            Dictionary<string, string>? headers = ParseHeaders(r.GetString(2));
            if (headers is null)
            {
                return null;
            }

            return new CollateralEntry(key, body, headers, DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)));
        });
    }

    public Task<int> PurgeStaleAsync(DateTimeOffset before, CancellationToken cancellationToken = default) => Run(async () =>
    {
        await using DbConnection c = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using DbCommand cmd = Command(c, null, "DELETE FROM collateral WHERE fresh_until_ms < @b", ("b", before.ToUnixTimeMilliseconds()));
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    });

    private static string HeadersJson(IReadOnlyDictionary<string, string>? headers)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            foreach (KeyValuePair<string, string> kv in (headers ?? new Dictionary<string, string>()).OrderBy(h => h.Key, StringComparer.Ordinal))
            {
                w.WriteString(kv.Key, kv.Value);
            }

            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static Dictionary<string, string>? ParseHeaders(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (JsonProperty p in doc.RootElement.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                {
                    return null;
                }

                result[p.Name] = p.Value.GetString()!;
            }

            return result;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    // ---------------------------------------------------------------- helpers

    private protected long NowMs() => Time.GetUtcNow().ToUnixTimeMilliseconds();

    internal static DbCommand Command(DbConnection c, DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        DbCommand cmd = c.CreateCommand();
#pragma warning disable CA2100 // SQL text is built only from constants in this assembly; values are parameters.
        cmd.CommandText = sql;
#pragma warning restore CA2100
        cmd.Transaction = tx;
        foreach ((string name, object? value) in parameters)
        {
            DbParameter p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }

        return cmd;
    }

    internal static async Task ExecAsync(DbConnection c, DbTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        await using DbCommand cmd = Command(c, tx, sql);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private protected async Task<T> Run<T>(Func<Task<T>> operation)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (DbException e)
        {
            OnFailure(e);
            throw new StorageException(StorageError.Unavailable, $"{Provider} storage operation failed: {e.Message}", e);
        }
    }

    /// <summary>Called with every failed statement before it becomes a <see cref="StorageException"/> (PostgreSQL drops pooled connections after a lost server).</summary>
    internal virtual void OnFailure(DbException exception)
    {
    }

    private static void RequireId(string value, string name)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new ArgumentException($"{name} must not be empty", name);
        }

        if (value.Length > MaxIdLength)
        {
            throw new ArgumentException($"{name} is longer than {MaxIdLength} characters", name);
        }
    }

    private static string Sha256Hex(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
