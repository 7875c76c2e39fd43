using System.Security.Cryptography;

namespace AttestBroker.Storage;

/// <summary>
/// Signs the audit chain head periodically: on each tick of a <see cref="TimeProvider"/> timer, a new signed head
/// is stored if the chain has grown since the last signed head. Ticks never overlap; a failed tick is reported to
/// <c>onError</c> and retried on the next one. The caller owns the signing key.
/// </summary>
public sealed class AuditHeadSigner : IAsyncDisposable
{
    private readonly IAuditLog _log;
    private readonly ECDsa _key;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly Action<Exception>? _onError;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ITimer? _timer;

    public AuditHeadSigner(IAuditLog log, ECDsa key, TimeSpan interval, TimeProvider? time = null, Action<Exception>? onError = null)
    {
        _log = log ?? throw new ArgumentNullException(nameof(log));
        AuditChain.RequireP256(key);
        _key = key;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _interval = interval;
        _time = time ?? TimeProvider.System;
        _onError = onError;
    }

    /// <summary>Starts the timer.</summary>
    public void Start()
    {
        _timer ??= _time.CreateTimer(_ => _ = TickAsync(), null, _interval, _interval);
    }

    /// <summary>Stores a signed head if the chain grew since the last one; returns it, or null when nothing changed.</summary>
    public async Task<SignedAuditHead?> SignIfAdvancedAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            AuditRecord? last = await _log.GetLastAsync(cancellationToken).ConfigureAwait(false);
            IReadOnlyList<SignedAuditHead> heads = await _log.ReadHeadsAsync(cancellationToken).ConfigureAwait(false);
            long signedUpTo = heads.Count == 0 ? -1 : heads.Max(h => h.Sequence);
            long current = last?.Sequence ?? 0;
            if (current <= signedUpTo)
            {
                return null;
            }

            return await _log.SignHeadAsync(_key, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task TickAsync()
    {
        try
        {
            await SignIfAdvancedAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is StorageException or OperationCanceledException or CryptographicException)
        {
            _onError?.Invoke(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_timer is not null)
        {
            await _timer.DisposeAsync().ConfigureAwait(false);
        }

        _gate.Dispose();
    }
}
