using System.Security.Cryptography;

namespace AttestBroker.Agent.Broker;

/// <summary>
/// Retries an operation that fails with <see cref="BrokerTransientException"/>: exponential backoff with jitter
/// (the delay before retry n is drawn uniformly from [b/2, b] where b = min(max, initial × 2^(n-1))), or the broker's
/// Retry-After when it gave one (capped at <see cref="RetryOptions.MaxRetryAfter"/>). Everything else passes through
/// at once. Waits on the given <see cref="TimeProvider"/>, so tests advance a fake clock instead of sleeping.
/// </summary>
public sealed class RetryPolicy
{
    private readonly RetryOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<double> _jitter;

    public RetryPolicy(RetryOptions options, TimeProvider? time = null, Func<double>? jitter = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxRetries < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "MaxRetries must be 0 or more");
        }

        _options = options;
        _time = time ?? TimeProvider.System;
        _jitter = jitter ?? (() => RandomNumberGenerator.GetInt32(0, 1 << 24) / (double)(1 << 24));
    }

    /// <summary>Called when each wait has started, with (retry number from 1, delay, reason), e.g. to print a line.</summary>
    public Action<int, TimeSpan, string>? OnRetry { get; init; }

    /// <summary>The delay before retry <paramref name="retry"/> (1-based) when the broker gave no Retry-After.</summary>
    public TimeSpan Backoff(int retry)
    {
        var exponent = Math.Min(retry - 1, 30);
        var ceiling = Math.Min(_options.InitialBackoff.TotalMilliseconds * Math.Pow(2, exponent), _options.MaxBackoff.TotalMilliseconds);
        var jitter = Math.Clamp(_jitter(), 0, 1);
        return TimeSpan.FromMilliseconds((ceiling / 2) + (jitter * ceiling / 2));
    }

    /// <summary>The delay before retry <paramref name="retry"/> after <paramref name="failure"/>.</summary>
    public TimeSpan DelayFor(int retry, BrokerTransientException failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        if (failure.RetryAfter is { } hint && hint >= TimeSpan.Zero)
        {
            return hint > _options.MaxRetryAfter ? _options.MaxRetryAfter : hint;
        }

        return Backoff(retry);
    }

    /// <summary>Runs <paramref name="operation"/> (given the attempt number from 1) until it succeeds, fails for good, or the retries are spent.</summary>
    /// <exception cref="BrokerUnavailableException">Every attempt failed transiently.</exception>
    public async Task<T> ExecuteAsync<T>(Func<int, CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(operation);
        var attempts = _options.MaxRetries + 1;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await operation(attempt, cancellationToken).ConfigureAwait(false);
            }
            catch (BrokerTransientException ex)
            {
                if (attempt >= attempts)
                {
                    throw new BrokerUnavailableException(attempt, ex.Message, ex);
                }

                var delay = DelayFor(attempt, ex);
                var wait = Task.Delay(delay, _time, cancellationToken);
                OnRetry?.Invoke(attempt, delay, ex.Message);
                await wait.ConfigureAwait(false);
            }
        }
    }
}

/// <summary>How often and how patiently to retry a broker that is unavailable.</summary>
public sealed class RetryOptions
{
    /// <summary>Retries after the first attempt (so MaxRetries + 1 attempts in all). Default 5.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>Backoff ceiling before the first retry. Default 500 ms.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Largest backoff ceiling. Default 30 s.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest Retry-After honoured; a longer hint waits this long. Default 2 minutes.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromMinutes(2);
}
