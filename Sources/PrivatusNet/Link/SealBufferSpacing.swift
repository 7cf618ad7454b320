import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Keeps swift-crypto's two buffers of a large seal from starting at the same offset modulo 4 KiB.
///
/// `AES.GCM.seal` encrypts into a buffer it `malloc`s (the plaintext's size), then copies that
/// ciphertext into the sealed box, 12 bytes (the nonce) into another `malloc`ed buffer. During a
/// bulk transfer glibc hands the same two chunks back for every frame, and when they start at
/// the same offset modulo 4 KiB, that copy's destination lies 12 bytes past its source modulo
/// 4 KiB: glibc's `memmove` (`rep movsb` above ≈ 2 KiB) then runs ≈ 15× slower on the AMD EPYC
/// machines measured (≈ 80 µs instead of ≈ 5 µs per 64 KiB; see ``LinkHandler/copyPiece``).
/// swift-crypto has no API that seals into a caller's buffer, so instead: after a large seal the
/// encryption buffer is found again (a `malloc` of its size returns the chunk just freed), and
/// when the sealed box sits at that distance from it, the box is kept, so that the next seal's box
/// takes another chunk. At most ``maximumKept`` boxes per link are kept, released when the link
/// has nothing more to send (the next burst checks again) and when it closes.
struct SealBufferSpacing {
    /// Seals smaller than this are copied by `memmove`'s vector loop: nothing to do.
    static let minimumBytes = 8 << 10
    static let maximumKept = 2

    private var kept: [Data] = []

    /// Called after sealing `plaintextBytes` into `ciphertext` (a slice of the sealed box, after
    /// its nonce).
    mutating func sealed(plaintextBytes: Int, ciphertext: Data) {
        #if canImport(Glibc)
        guard plaintextBytes >= Self.minimumBytes, kept.count < Self.maximumKept,
            let encryptionBuffer = malloc(plaintextBytes)
        else { return }
        free(encryptionBuffer)
        let start = ciphertext.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let distance = (start &- UInt(bitPattern: encryptionBuffer)) % 4096
        // Measured: a distance of 12 bytes is ≈ 15× slower, 20 and more are not.
        if distance > 0 && distance <= 16 { kept.append(ciphertext) }
        #endif
    }

    /// Lets the kept boxes go.
    mutating func release() {
        if !kept.isEmpty { kept = [] }
    }
}
