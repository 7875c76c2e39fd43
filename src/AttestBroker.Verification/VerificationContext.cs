namespace AttestBroker.Verification;

/// <summary>What a verification runs against: the time, the trust anchors and the CRL opt-out.</summary>
public sealed record VerificationContext
{
    public VerificationContext(DateTimeOffset at, TrustStore trust)
    {
        At = at;
        Trust = trust;
    }

    /// <summary>The verification time: every certificate and collateral item must be valid at this instant.</summary>
    public DateTimeOffset At { get; init; }

    public TrustStore Trust { get; init; }

    /// <summary>The explicit opt-out of revocation checks (offline checks where no in-date CRL exists).</summary>
    public bool SkipCrl { get; init; }
}

/// <summary>One verifier per TEE kind: evidence in, a <see cref="VerificationResult"/> out. Never throws for bad evidence.</summary>
public interface IEvidenceVerifier
{
    Evidence.TeeKind Kind { get; }

    /// <summary>Verifies the evidence; collateral comes from the verifier's own source (files, cache, or fetched).</summary>
    Task<VerificationResult> VerifyAsync(ReadOnlyMemory<byte> evidence, VerificationContext context, CancellationToken cancellationToken = default);
}
