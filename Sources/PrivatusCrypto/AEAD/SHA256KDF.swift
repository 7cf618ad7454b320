import Crypto

#if canImport(CCryptoBoringSSL)
import CCryptoBoringSSL
#endif

/// HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869) for the per-message key derivations of the
/// Double Ratchet (a chain step and a message key for every message sent and received).
///
/// swift-crypto's `HMAC<SHA256>` and `HKDF<SHA256>` are generic Swift over BoringSSL's SHA-256:
/// each call builds its keys, digests and results in fresh allocations and looks up generic
/// metadata at run time, which made the two derivations of a received message ≈ 16 % of the
/// receiving node's CPU (BENCHMARKS.md, "Sustained throughput"). Where swift-crypto builds
/// BoringSSL (Linux) this calls BoringSSL's own one-shot `HMAC` and `HKDF` with `EVP_sha256`,
/// the same primitives underneath, into the caller's array; elsewhere it uses swift-crypto.
/// `SHA256KDFTests` checks both against the RFCs' vectors and against swift-crypto at many
/// lengths, and the ratchet's vectors run through it.
public enum SHA256KDF {
    /// HMAC-SHA256 of `data` under `key`: 32 bytes.
    public static func hmac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        #if canImport(CCryptoBoringSSL)
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let done = key.withUnsafeBytes { key in
            data.withUnsafeBytes { data in
                out.withUnsafeMutableBytes { out in
                    CCryptoBoringSSL_HMAC(
                        CCryptoBoringSSL_EVP_sha256(), key.baseAddress, key.count,
                        data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count,
                        out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length)
                }
            }
        }
        // BoringSSL fails only when it cannot allocate.
        precondition(done != nil && length == 32, "HMAC-SHA256 failed")
        return out
        #else
        return Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
        #endif
    }

    /// HKDF-SHA256 (extract with `salt`, then expand with `info`): `outputByteCount` bytes, at
    /// most 255 × 32.
    public static func hkdf(inputKeyMaterial: [UInt8], salt: [UInt8], info: [UInt8], outputByteCount: Int) -> [UInt8] {
        precondition(outputByteCount > 0 && outputByteCount <= 255 * 32, "HKDF-SHA256 gives 1 to 8,160 bytes")
        #if canImport(CCryptoBoringSSL)
        var out = [UInt8](repeating: 0, count: outputByteCount)
        let done = inputKeyMaterial.withUnsafeBytes { secret in
            salt.withUnsafeBytes { salt in
                info.withUnsafeBytes { info in
                    out.withUnsafeMutableBytes { out in
                        CCryptoBoringSSL_HKDF(
                            out.baseAddress?.assumingMemoryBound(to: UInt8.self), out.count,
                            CCryptoBoringSSL_EVP_sha256(),
                            secret.baseAddress?.assumingMemoryBound(to: UInt8.self), secret.count,
                            salt.baseAddress?.assumingMemoryBound(to: UInt8.self), salt.count,
                            info.baseAddress?.assumingMemoryBound(to: UInt8.self), info.count)
                    }
                }
            }
        }
        // The length was checked; BoringSSL fails otherwise only when it cannot allocate.
        precondition(done == 1, "HKDF-SHA256 failed")
        return out
        #else
        return HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: inputKeyMaterial), salt: salt, info: info,
            outputByteCount: outputByteCount
        ).withUnsafeBytes { Array($0) }
        #endif
    }
}
