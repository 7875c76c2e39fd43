using System.Security.Cryptography;
using System.Text;

namespace AttestBroker.Models;

/// <summary>
/// A 32-byte model key held in a pinned array and zeroed on <see cref="Dispose"/>. It can come from anywhere
/// (a key file, the broker, a test) as a span; the caller zeroes its own copy.
/// </summary>
public sealed class ModelKey : IDisposable
{
    public const int Length = 32;

    private static readonly System.Buffers.SearchValues<byte> Base64Alphabet =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="u8);

    private readonly byte[] _bytes;
    private bool _disposed;

    private ModelKey(ReadOnlySpan<byte> key)
    {
        _bytes = GC.AllocateArray<byte>(Length, pinned: true);
        key.CopyTo(_bytes);
    }

    /// <summary>Copies a 32-byte key into pinned memory.</summary>
    public static ModelKey FromBytes(ReadOnlySpan<byte> key)
    {
        if (key.Length != Length)
        {
            throw new ModelException(ModelError.ModelKeyInvalid, $"model key must be {Length} bytes, got {key.Length}");
        }

        return new ModelKey(key);
    }

    /// <summary>A fresh random key.</summary>
    public static ModelKey Generate()
    {
        Span<byte> buffer = stackalloc byte[Length];
        RandomNumberGenerator.Fill(buffer);
        try
        {
            return new ModelKey(buffer);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>
    /// Reads a key file's content: exactly 32 raw bytes, or base64 text (surrounding whitespace allowed) of 32 bytes.
    /// Every intermediate copy is zeroed. The message of a failure never contains key bytes.
    /// </summary>
    public static ModelKey FromKeyFileContent(ReadOnlySpan<byte> content)
    {
        if (content.Length == Length)
        {
            // 32 bytes that are all base64 characters are base64 text of a 24-byte key, not a raw key
            // (a random raw key is all-base64 with probability 4^-32).
            if (content.IndexOfAnyExcept(Base64Alphabet) < 0)
            {
                throw new ModelException(ModelError.ModelKeyInvalid, $"key file holds 32 base64 characters (a 24-byte key?): it must hold {Length} raw bytes or their base64 text");
            }

            return new ModelKey(content);
        }

        var text = content.Trim(" \t\r\n"u8);
        if (text.Length is 0 or > 128)
        {
            throw new ModelException(ModelError.ModelKeyInvalid, $"key file must hold {Length} raw bytes or their base64 text");
        }

        var chars = new char[text.Length];
        var decoded = new byte[96];
        try
        {
            var charCount = Encoding.ASCII.GetChars(text, chars);
            if (!Convert.TryFromBase64Chars(chars.AsSpan(0, charCount), decoded, out var written) || written != Length)
            {
                throw new ModelException(ModelError.ModelKeyInvalid, $"key file must hold {Length} raw bytes or their base64 text");
            }

            return new ModelKey(decoded.AsSpan(0, Length));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(chars.AsSpan()));
            CryptographicOperations.ZeroMemory(decoded);
        }
    }

    /// <summary>Reads a key file. The file content buffer is zeroed afterwards.</summary>
    public static ModelKey FromKeyFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
            return FromStream(stream, path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelException(ModelError.ModelKeyInvalid, $"cannot read key file {path}: {ex.Message}", ex);
        }
    }

    /// <summary>Reads key-file content from a stream (e.g. standard input, or a pipe from a secret store); at most 256 bytes.</summary>
    public static ModelKey FromStream(Stream stream, string name = "key stream")
    {
        ArgumentNullException.ThrowIfNull(stream);
        byte[] content;
        try
        {
            content = ReadBounded(stream);
        }
        catch (IOException ex)
        {
            throw new ModelException(ModelError.ModelKeyInvalid, $"cannot read {name}: {ex.Message}", ex);
        }

        try
        {
            return FromKeyFileContent(content);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
        }
    }

    /// <summary>The key bytes; valid until disposed.</summary>
    internal ReadOnlySpan<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _bytes;
        }
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            CryptographicOperations.ZeroMemory(_bytes);
            _disposed = true;
        }
    }

    private static byte[] ReadBounded(Stream stream)
    {
        const int Limit = 256;
        var buffer = new byte[Limit + 1];
        var total = 0;
        int read;
        while (total < buffer.Length && (read = stream.Read(buffer, total, buffer.Length - total)) > 0)
        {
            total += read;
        }

        if (total > Limit)
        {
            CryptographicOperations.ZeroMemory(buffer);
            throw new ModelException(ModelError.ModelKeyInvalid, $"key file is larger than {Limit} bytes");
        }

        var content = buffer.AsSpan(0, total).ToArray();
        CryptographicOperations.ZeroMemory(buffer);
        return content;
    }
}
