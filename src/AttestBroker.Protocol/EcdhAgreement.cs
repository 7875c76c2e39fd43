using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Text;

namespace AttestBroker.Protocol;

/// <summary>
/// The raw ECDH shared secret Z (the x coordinate of d·Q, field-size bytes) between an own EC key and a peer's
/// public <see cref="Jwk"/>, for ECDH-ES.
/// <para>
/// Through .NET's API an agreement with a peer key checks the peer point twice more with a full scalar
/// multiplication by the group order: once when its parameters are imported (EC_KEY_check_key) and once when the
/// agreement sets the peer (EVP_PKEY_derive_set_peer validates it again). Together those cost more CPU than the
/// agreement itself. For P-256 and P-384 (cofactor 1) they add nothing to what a <see cref="Jwk"/> already
/// guarantees: coordinates of the field size, below p, satisfying the curve equation, hence a point of prime order n.
/// So where .NET itself uses OpenSSL 3 (Linux), the agreement is done by that same libcrypto directly: the peer
/// is imported from its point with EVP_PKEY_fromdata (OpenSSL checks the point is on the curve once more) and the agreement
/// is made without the repeated order check. Elsewhere, or for a key that OpenSSL does not hold, .NET's
/// <see cref="ECDiffieHellman.DeriveRawSecretAgreement"/> is used. The direct path is used only after a
/// self-test agreement gives the same Z as .NET's.
/// </para>
/// </summary>
public static partial class EcdhAgreement
{
    private const string LibCrypto = "libcrypto.so.3";

    private static readonly Lazy<bool> DirectAvailable = new(ProbeDirect);

    /// <summary>True when agreements go directly to OpenSSL 3 (see the type's remarks).</summary>
    public static bool UsesOpenSslDirectly => DirectAvailable.Value;

    /// <summary>
    /// A new EC key pair on <paramref name="curve"/> for key agreement. Where the direct path is available it is an
    /// <see cref="ECDiffieHellmanOpenSsl"/>, so <see cref="DeriveRawSecret"/> can use it; any other
    /// <see cref="ECDiffieHellman"/> works too, through .NET's agreement.
    /// </summary>
    public static ECDiffieHellman CreateKey(ECCurve curve)
    {
        if (OperatingSystem.IsLinux() && DirectAvailable.Value)
        {
            return new ECDiffieHellmanOpenSsl(curve);
        }

        return ECDiffieHellman.Create(curve);
    }

    /// <summary>
    /// Z between <paramref name="own"/> (with its private key) and <paramref name="peer"/> (an EC JWK on the same
    /// curve). The caller zeroes the result. Throws <see cref="CryptographicException"/> when the agreement fails
    /// (e.g. <paramref name="own"/> has no private key).
    /// </summary>
    public static byte[] DeriveRawSecret(ECDiffieHellman own, Jwk peer)
    {
        ArgumentNullException.ThrowIfNull(own);
        ArgumentNullException.ThrowIfNull(peer);
        if (peer.KeyType != JwkKeyType.Ec)
        {
            throw new ArgumentException("the peer key is not an EC key", nameof(peer));
        }

        if (own.KeySize != peer.KeySizeBits)
        {
            throw new CryptographicException("the two keys are on different curves");
        }

        if (OperatingSystem.IsLinux() && own is ECDiffieHellmanOpenSsl openSsl && DirectAvailable.Value)
        {
            return DeriveDirect(openSsl, peer);
        }

        using var peerKey = peer.CreateECDiffieHellman();
        using var peerPublic = peerKey.PublicKey;
        return own.DeriveRawSecretAgreement(peerPublic);
    }

    /// <summary>The agreement through .NET's API only (the reference the direct path is checked against).</summary>
    internal static byte[] DeriveThroughDotNet(ECDiffieHellman own, Jwk peer)
    {
        using var peerKey = peer.CreateECDiffieHellman();
        using var peerPublic = peerKey.PublicKey;
        return own.DeriveRawSecretAgreement(peerPublic);
    }

    /// <summary>
    /// The peer as an OpenSSL public key made from its uncompressed point (0x04 ‖ X ‖ Y) on the named group, or 0 when
    /// OpenSSL refuses it (wrong length, or not on the curve: the import checks that). This is EVP_PKEY_fromdata, about
    /// a quarter of the CPU of decoding the same key from DER with d2i_PUBKEY, which goes through OpenSSL 3's generic
    /// decoder machinery. The caller frees a non-zero result with EVP_PKEY_free.
    /// </summary>
    internal static unsafe nint ImportPeerPoint(string groupName, ReadOnlySpan<byte> uncompressedPoint)
    {
        var group = Encoding.ASCII.GetBytes(groupName + "\0");
        var ctx = EvpPKeyCtxNewFromName(0, "EC", null);
        if (ctx == 0)
        {
            ErrClearError();
            return 0;
        }

        try
        {
            fixed (byte* groupPtr = group)
            fixed (byte* pointPtr = uncompressedPoint)
            fixed (byte* groupKey = "group\0"u8)
            fixed (byte* pubKey = "pub\0"u8)
            {
                var parameters = stackalloc OsslParam[3];
                parameters[0] = new OsslParam { Key = (nint)groupKey, DataType = OsslParamUtf8String, Data = (nint)groupPtr, DataSize = (nuint)(group.Length - 1), ReturnSize = nuint.MaxValue };
                parameters[1] = new OsslParam { Key = (nint)pubKey, DataType = OsslParamOctetString, Data = (nint)pointPtr, DataSize = (nuint)uncompressedPoint.Length, ReturnSize = nuint.MaxValue };
                parameters[2] = default;
                nint key = 0;
                if (EvpPKeyFromDataInit(ctx) != 1 || EvpPKeyFromData(ctx, ref key, EvpPKeyPublicKeySelection, parameters) != 1 || key == 0)
                {
                    ErrClearError();
                    return 0;
                }

                return key;
            }
        }
        finally
        {
            EvpPKeyCtxFree(ctx);
        }
    }

    /// <summary>Frees a key from <see cref="ImportPeerPoint"/> (0 is ignored).</summary>
    internal static void FreeKey(nint key)
    {
        if (key != 0)
        {
            EvpPKeyFree(key);
        }
    }

    [SupportedOSPlatform("linux")]
    internal static unsafe byte[] DeriveDirect(ECDiffieHellmanOpenSsl own, Jwk peer)
    {
        var curve = peer.CurveInfo!;
        var length = curve.CoordinateLength;
        Span<byte> point = stackalloc byte[1 + (2 * length)];
        point[0] = 0x04;
        peer.EcX.CopyTo(point[1..]);
        peer.EcY.CopyTo(point[(1 + length)..]);
        var peerKey = ImportPeerPoint(curve == EcCurveInfo.P256 ? "prime256v1" : "secp384r1", point);
        if (peerKey == 0)
        {
            throw new CryptographicException("the peer public key was refused");
        }

        using var ownHandle = own.DuplicateKeyHandle();
        var added = false;
        nint ctx = 0;
        var z = new byte[length];
        try
        {
            ownHandle.DangerousAddRef(ref added);
            ctx = EvpPKeyCtxNew(ownHandle.DangerousGetHandle(), 0);
            var written = (nuint)length;
            fixed (byte* zp = z)
            {
                // validate_peer = 0: the peer point was checked by the JWK and by the import (see the type's remarks).
                if (ctx == 0 || EvpPKeyDeriveInit(ctx) != 1 || EvpPKeyDeriveSetPeerEx(ctx, peerKey, 0) != 1
                    || EvpPKeyDerive(ctx, zp, ref written) != 1 || written != (nuint)length)
                {
                    ErrClearError();
                    CryptographicOperations.ZeroMemory(z);
                    throw new CryptographicException("the key agreement failed");
                }
            }

            return z;
        }
        finally
        {
            if (ctx != 0)
            {
                EvpPKeyCtxFree(ctx);
            }

            EvpPKeyFree(peerKey);
            if (added)
            {
                ownHandle.DangerousRelease();
            }
        }
    }

    private static bool ProbeDirect()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("ATTESTBROKER_ECDH_DOTNET_ONLY") == "1")
        {
            return false;
        }

        try
        {
            // .NET's own libcrypto first (this loads it), then ours by the same soname, which the dynamic loader
            // resolves to the library already loaded; the versions must agree and be 3.x.
            var dotnetVersion = SafeEvpPKeyHandle.OpenSslVersion;
            if ((dotnetVersion >> 28) != 3 || (long)OpenSslVersionNum() != dotnetVersion)
            {
                return false;
            }

            foreach (var curve in new[] { ECCurve.NamedCurves.nistP256, ECCurve.NamedCurves.nistP384 })
            {
                using var own = new ECDiffieHellmanOpenSsl(curve);
                using var other = ECDiffieHellman.Create(curve);
                var peer = Jwk.FromPublicKey(other);
                var expected = DeriveThroughDotNet(own, peer);
                var direct = DeriveDirect(own, peer);
                var same = CryptographicOperations.FixedTimeEquals(expected, direct);
                CryptographicOperations.ZeroMemory(expected);
                CryptographicOperations.ZeroMemory(direct);
                if (!same)
                {
                    return false;
                }
            }

            return true;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or CryptographicException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    [LibraryImport(LibCrypto, EntryPoint = "OpenSSL_version_num")]
    private static partial nuint OpenSslVersionNum();

    // OSSL_PARAM data types and EVP_PKEY_PUBLIC_KEY (OSSL_KEYMGMT_SELECT_ALL_PARAMETERS | OSSL_KEYMGMT_SELECT_PUBLIC_KEY), from OpenSSL 3's core.h and evp.h.
    private const uint OsslParamUtf8String = 4;
    private const uint OsslParamOctetString = 5;
    private const int EvpPKeyPublicKeySelection = 0x86;

    /// <summary>OpenSSL's OSSL_PARAM: key, data_type, data, data_size, return_size (an all-zero one ends a list).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct OsslParam
    {
        public nint Key;
        public uint DataType;
        public nint Data;
        public nuint DataSize;
        public nuint ReturnSize;
    }

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_CTX_new_from_name", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint EvpPKeyCtxNewFromName(nint libraryContext, string name, string? propertyQuery);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_fromdata_init")]
    private static partial int EvpPKeyFromDataInit(nint ctx);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_fromdata")]
    private static unsafe partial int EvpPKeyFromData(nint ctx, ref nint key, int selection, OsslParam* parameters);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_free")]
    private static partial void EvpPKeyFree(nint key);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_CTX_new")]
    private static partial nint EvpPKeyCtxNew(nint key, nint engine);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_CTX_free")]
    private static partial void EvpPKeyCtxFree(nint ctx);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_derive_init")]
    private static partial int EvpPKeyDeriveInit(nint ctx);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_derive_set_peer_ex")]
    private static partial int EvpPKeyDeriveSetPeerEx(nint ctx, nint peer, int validatePeer);

    [LibraryImport(LibCrypto, EntryPoint = "EVP_PKEY_derive")]
    private static unsafe partial int EvpPKeyDerive(nint ctx, byte* key, ref nuint keyLength);

    [LibraryImport(LibCrypto, EntryPoint = "ERR_clear_error")]
    private static partial void ErrClearError();
}
