import CCryptoBoringSSL

/// Random bytes for ids and nonces, from BoringSSL's generator (`RAND_bytes`, the CSPRNG that
/// swift-crypto's BoringSSL draws its own keys and nonces from).
///
/// `SymmetricKey(size:)` and `SystemRandomNumberGenerator` make one `getrandom` system call per
/// draw; a sent message took five (its id, two row ids, two nonces of sealed values), ≈ 3 % of a
/// sending node's CPU (BENCHMARKS.md, session 15). BoringSSL keeps a CTR-DRBG per thread, seeded
/// from the kernel and reseeded every 4,096 draws and after a fork, so on Linux (where it detects
/// forks) a draw is a few AES blocks in user space. swift-crypto builds BoringSSL on every
/// platform (`CryptoExtras` depends on it).
public enum SecureRandom {
    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        // RAND_bytes aborts the process rather than fail when the kernel gives no entropy; a
        // build that returned failure instead must not leave an id or a nonce unset.
        let drawn = CCryptoBoringSSL_RAND_bytes(base.assumingMemoryBound(to: UInt8.self), buffer.count)
        precondition(drawn == 1, "the random generator failed")
    }

    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}
