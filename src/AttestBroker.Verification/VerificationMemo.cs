using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace AttestBroker.Verification;

/// <summary>
/// Remembers the results of pure, expensive verification steps (parsing a certificate chain or a CRL, checking a
/// signature over immutable bytes) keyed by the SHA-256 of every byte they depend on, so that verifying the next
/// quote from the same platform, against the same collateral, repeats only the per-quote work (the quote's own
/// signatures). Nothing time-dependent is remembered: validity windows are checked on every verification. The
/// memo is bounded: when full it is emptied and fills again from use.
/// </summary>
/// <typeparam name="T">What is remembered; must be immutable or safe to share between threads.</typeparam>
public sealed class VerificationMemo<T>
{
    private readonly ConcurrentDictionary<Key, T> _entries = new();
    private readonly int _capacity;

    public VerificationMemo(int capacity = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    public int Count => _entries.Count;

    /// <summary>The remembered value for these inputs, or the one <paramref name="compute"/> gives (then remembered).</summary>
    public T GetOrAdd(ReadOnlySpan<byte> input, Func<T> compute) => GetOrAdd(input, [], compute);

    /// <summary>The same, for a result that depends on two byte strings (a certificate and its issuer, a message and a key).</summary>
    public T GetOrAdd(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, Func<T> compute)
    {
        ArgumentNullException.ThrowIfNull(compute);
        var key = Key.Of(first, second);
        if (_entries.TryGetValue(key, out var hit))
        {
            return hit;
        }

        var value = compute();
        if (_entries.Count >= _capacity)
        {
            _entries.Clear();
        }

        _entries[key] = value;
        return value;
    }

    private readonly record struct Key(UInt128 High, UInt128 Low)
    {
        public static Key Of(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
        {
            // One-shot SHA-256 over length(first) || first || second: no hashing context to create per look-up.
            var total = 8 + first.Length + second.Length;
            var rented = total <= 1024 ? null : System.Buffers.ArrayPool<byte>.Shared.Rent(total);
            var buffer = rented is null ? stackalloc byte[total] : rented.AsSpan(0, total);
            try
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(buffer, first.Length);
                first.CopyTo(buffer[8..]);
                second.CopyTo(buffer[(8 + first.Length)..]);
                Span<byte> digest = stackalloc byte[32];
                SHA256.HashData(buffer, digest);
                return new Key(
                    System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(digest),
                    System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(digest[16..]));
            }
            finally
            {
                if (rented is not null)
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(rented);
                }
            }
        }
    }
}

/// <summary>Remembering the outcome of a parse, failure included, so that malformed input is not parsed again either.</summary>
public static class VerificationMemoExtensions
{
    /// <summary>
    /// The value <paramref name="parse"/> gives for these bytes, remembered; a <see cref="FormatException"/> it throws is
    /// remembered too and thrown again (with the same message) on every later look-up of the same bytes.
    /// </summary>
    public static T Parse<T>(this VerificationMemo<(T? Value, string? Error)> memo, ReadOnlySpan<byte> input, Func<T> parse)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(memo);
        ArgumentNullException.ThrowIfNull(parse);
        var (value, error) = memo.GetOrAdd(input, () =>
        {
            try
            {
                return (parse(), null);
            }
            catch (FormatException ex)
            {
                return (null, ex.Message);
            }
        });
        return value ?? throw new FormatException(error);
    }
}

