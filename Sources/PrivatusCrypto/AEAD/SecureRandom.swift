import Crypto

#if canImport(CCryptoBoringSSL)
import CCryptoBoringSSL
#endif

/// Random bytes for ids and nonces, from BoringSSL's generator (`RAND_bytes`, the CSPRNG that
/// swift-crypto's BoringSSL draws its own keys and nonces from).
///
/// `SymmetricKey(size:)` and `SystemRandomNumberGenerator` make one `getrandom` system call per
/// draw; a sent message took five (its id, two row ids, two nonces of sealed values), ≈ 3 % of a
/// sending node's CPU (BENCHMARKS.md, session 15). BoringSSL keeps a CTR-DRBG per thread, seeded
/// from the kernel and reseeded every 4,096 draws and after a fork, so a draw is a few AES
/// blocks in user space.
///
/// Where swift-crypto does not build BoringSSL (Apple platforms) the draw is the system's.
public enum SecureRandom {
    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        #if canImport(CCryptoBoringSSL)
        // RAND_bytes never fails: it aborts the process if the kernel gives no entropy.
        _ = CCryptoBoringSSL_RAND_bytes(base.assumingMemoryBound(to: UInt8.self), buffer.count)
        #else
        var generator = SystemRandomNumberGenerator()
        for index in 0..<buffer.count { buffer[index] = generator.next() }
        #endif
    }

    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}
