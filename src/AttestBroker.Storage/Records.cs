namespace AttestBroker.Storage;

/// <summary>One audited event: a release/attestation decision or an admin change. Never holds key material.</summary>
/// <param name="Kind">What happened, e.g. "release", "attestation", "policy.set", "key.disable".</param>
/// <param name="Time">When it happened (the caller's clock; stored to the millisecond, UTC).</param>
/// <param name="Actor">Requester or admin identity.</param>
/// <param name="Decision">"granted" / "denied" for decisions; null for admin changes.</param>
/// <param name="Reasons">Reason codes, in the order the caller gives them.</param>
/// <param name="EvidenceDigest">Digest of the evidence (hex or algorithm-prefixed text).</param>
/// <param name="ClaimsDigest">Digest of the verified claims.</param>
/// <param name="PolicyVersion">Version of the policy that decided.</param>
/// <param name="KeyId">Key concerned, if any.</param>
/// <param name="Details">Further string attributes; serialised with keys in ordinal order.</param>
public sealed record AuditEvent(
    string Kind,
    DateTimeOffset Time,
    string? Actor = null,
    string? Decision = null,
    IReadOnlyList<string>? Reasons = null,
    string? EvidenceDigest = null,
    string? ClaimsDigest = null,
    long? PolicyVersion = null,
    string? KeyId = null,
    IReadOnlyDictionary<string, string>? Details = null);

/// <summary>A stored audit row: its place in the chain and the exact canonical JSON that was hashed.</summary>
public sealed record AuditRecord(long Sequence, byte[] PreviousHash, byte[] Hash, string Kind, DateTimeOffset Time, string EventJson);

/// <summary>A signed statement "the chain had this head at this time".</summary>
public sealed record SignedAuditHead(long Sequence, byte[] HeadHash, byte[] Signature, string SignerKeyId, DateTimeOffset SignedAt);

/// <summary>How the chain is broken at <see cref="AuditBreak.Sequence"/>.</summary>
public enum AuditBreakKind
{
    /// <summary>A row's content or hash no longer matches what the chain committed to.</summary>
    Edited,
    /// <summary>A row is missing (a gap, a removed row with later rows renumbered, or rows cut off the end).</summary>
    Deleted,
    /// <summary>A row links to a row that sits elsewhere in the log.</summary>
    Reordered,
    /// <summary>A stored signed head does not verify with the given public key.</summary>
    HeadSignatureInvalid,
}

/// <summary>The first place the chain is broken.</summary>
public sealed record AuditBreak(long Sequence, AuditBreakKind Kind, string Detail);

/// <summary>Result of <see cref="IAuditLog.VerifyAsync"/>.</summary>
/// <param name="RowsChecked">Rows read before the first break (all rows when valid).</param>
/// <param name="LastSequence">Highest sequence in the log (0 when empty).</param>
/// <param name="HeadsChecked">Signed heads whose signature and hash were checked (0 when no key was given).</param>
public sealed record AuditVerification(long RowsChecked, long LastSequence, int HeadsChecked, AuditBreak? FirstBreak)
{
    public bool IsValid => FirstBreak is null;
}

/// <summary>One version of a named policy document (opaque text plus its SHA-256).</summary>
public sealed record PolicyVersion(string Name, long Version, string Document, string Sha256Hex, string Author, DateTimeOffset CreatedAt, string? Comment);

/// <summary>Whether a key may be released.</summary>
public enum KeyState
{
    Enabled,
    Disabled,
}

/// <summary>A stored model key: only ever its wrapped form, plus metadata.</summary>
/// <param name="Wrapped">Ciphertext of the key under the wrapping key; never plaintext.</param>
/// <param name="WrappingKeyId">Identity (fingerprint) of the key-encryption key.</param>
/// <param name="WrappingKeyVersion">Version of the key-encryption key.</param>
/// <param name="Backend">Name of the keystore backend that owns the key.</param>
public sealed record KeyRecord(
    string KeyId,
    byte[] Wrapped,
    string WrappingKeyId,
    int WrappingKeyVersion,
    KeyState State,
    string Backend,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RotatedAt,
    DateTimeOffset? DisabledAt)
{
    // Wrapped bytes are ciphertext, but they still stay out of logs.
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("KeyId = ").Append(KeyId)
            .Append(", WrappingKeyId = ").Append(WrappingKeyId)
            .Append(", WrappingKeyVersion = ").Append(WrappingKeyVersion)
            .Append(", State = ").Append(State)
            .Append(", Backend = ").Append(Backend);
        return true;
    }
}

/// <summary>A cached collateral response.</summary>
public sealed record CollateralEntry(string Key, byte[] Body, IReadOnlyDictionary<string, string> Headers, DateTimeOffset FetchedAt, DateTimeOffset FreshUntil);

/// <summary>What <see cref="IBrokerStorage.MigrateAsync"/> did.</summary>
public sealed record MigrationResult(int SchemaVersion, IReadOnlyList<int> Applied);
