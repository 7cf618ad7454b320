import Crypto
import Foundation

#if canImport(CryptoBoringWrapper)
import CryptoBoringWrapper
#endif

/// An AES-256-GCM key prepared once for many seals and opens.
///
/// `AES.GCM.seal` and `AES.GCM.open` prepare the key on every call: on Linux swift-crypto builds
/// a BoringSSL `EVP_AEAD_CTX` (the AES key schedule and the GHASH tables) for each message and
/// throws it away after. For a 64-byte link frame that preparation is most of the cost
/// (BENCHMARKS.md, "Where a round trip's extra ≈ 70 µs goes"). This type keeps the prepared
/// context for as long as its key is in use and calls the same swift-crypto code
/// (`CryptoBoringWrapper.BoringSSLAEAD.AEADContext`, the BoringSSL AEAD that `AES.GCM` itself
/// seals and opens through), so the bytes are exactly those of `AES.GCM`
/// (`AESGCMContextTests` compares both, and the Noise vectors run through it).
///
/// Where that module is not built (Apple platforms, where swift-crypto uses CryptoKit) the type
/// falls back to `AES.GCM` with the key.
///
/// Thread safety: BoringSSL's seal and open read the context and never change it (they take a
/// `const EVP_AEAD_CTX *`), so one context may be used from several threads at once.
public final class AESGCMContext: @unchecked Sendable {
    /// The key length: AES-256.
    public static let keyBytes = 32
    /// The nonce length.
    public static let nonceBytes = 12
    /// The tag length.
    public static let tagBytes = 16

    #if canImport(CryptoBoringWrapper)
    private let context: BoringSSLAEAD.AEADContext
    #else
    private let key: SymmetricKey
    #endif

    /// Prepares `key`, which must be 32 bytes.
    public init(key: SymmetricKey) {
        precondition(key.bitCount == Self.keyBytes * 8, "an AES-256-GCM key is 32 bytes")
        #if canImport(CryptoBoringWrapper)
        do {
            context = try key.withUnsafeBytes { try BoringSSLAEAD.AEADContext(cipher: .aes256gcm, key: $0) }
        } catch {
            // BoringSSL refuses a context only for a key of the wrong length, checked above.
            preconditionFailure("AES-256-GCM refused a 32-byte key")
        }
        #else
        self.key = key
        #endif
    }

    /// Encrypts `plaintext` under `nonce` (12 bytes) and authenticates it with `associatedData`:
    /// the ciphertext (as long as the plaintext) and the 16-byte tag, in two buffers.
    public func seal(
        _ plaintext: some DataProtocol, nonce: UnsafeRawBufferPointer, authenticating associatedData: some DataProtocol
    ) -> (ciphertext: Data, tag: Data) {
        precondition(nonce.count == Self.nonceBytes, "an AES-GCM nonce is 12 bytes")
        do {
            #if canImport(CryptoBoringWrapper)
            return try context.seal(message: plaintext, nonce: nonce, authenticatedData: associatedData)
            #else
            let box = try AES.GCM.seal(
                plaintext, using: key, nonce: try AES.GCM.Nonce(data: nonce), authenticating: associatedData)
            return (box.ciphertext, box.tag)
            #endif
        } catch {
            // Sealing fails only for a bad key or nonce length, both checked: a failure is a bug.
            preconditionFailure("AES-GCM sealing failed")
        }
    }

    /// Seals `plaintext` under a fresh random nonce: `nonce (12) ‖ ciphertext ‖ tag (16)`, the
    /// layout of swift-crypto's `AES.GCM.SealedBox.combined`.
    public func sealCombined(_ plaintext: some DataProtocol, authenticating associatedData: some DataProtocol) -> Data {
        var nonce = SystemRandomNumberGenerator()
        let words = (nonce.next() as UInt64, nonce.next() as UInt32)
        return withUnsafeBytes(of: words) { raw in
            let nonceBytes = UnsafeRawBufferPointer(rebasing: raw[..<Self.nonceBytes])
            let (ciphertext, tag) = seal(plaintext, nonce: nonceBytes, authenticating: associatedData)
            var combined = Data(capacity: Self.nonceBytes + ciphertext.count + Self.tagBytes)
            combined.append(contentsOf: nonceBytes)
            combined.append(ciphertext)
            combined.append(tag)
            return combined
        }
    }

    /// Decrypts `ciphertext` sealed under `nonce` with `tag`, checking the tag against
    /// `associatedData` first. The ciphertext and tag are read in place (not copied).
    /// - Throws: ``AESGCMContextError/authenticationFailure`` when the tag does not verify (any
    ///   changed byte, another key, nonce or associated data), or the nonce or tag has the wrong
    ///   length.
    public func open(
        ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        authenticating associatedData: some DataProtocol
    ) throws(AESGCMContextError) -> Data {
        guard nonce.count == Self.nonceBytes, tag.count == Self.tagBytes else { throw .authenticationFailure }
        do {
            #if canImport(CryptoBoringWrapper)
            return try context.open(
                ciphertext: Self.borrowed(ciphertext), nonce: nonce, tag: Self.borrowed(tag),
                authenticatedData: associatedData)
            #else
            let box = try AES.GCM.SealedBox(
                nonce: try AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
            return try AES.GCM.open(box, using: key, authenticating: associatedData)
            #endif
        } catch {
            throw .authenticationFailure
        }
    }

    /// Opens `nonce (12) ‖ ciphertext ‖ tag (16)` (``sealCombined(_:authenticating:)``'s layout).
    /// - Throws: ``AESGCMContextError/authenticationFailure``, also for fewer than 28 bytes.
    public func open(
        combined: some ContiguousBytes, authenticating associatedData: some DataProtocol
    )
        throws(AESGCMContextError) -> Data
    {
        let opened: Result<Data, AESGCMContextError> = combined.withUnsafeBytes { raw in
            guard raw.count >= Self.nonceBytes + Self.tagBytes else { return .failure(.authenticationFailure) }
            let tagStart = raw.count - Self.tagBytes
            return Result { () throws(AESGCMContextError) in
                try open(
                    ciphertext: UnsafeRawBufferPointer(rebasing: raw[Self.nonceBytes..<tagStart]),
                    tag: UnsafeRawBufferPointer(rebasing: raw[tagStart...]),
                    nonce: UnsafeRawBufferPointer(rebasing: raw[..<Self.nonceBytes]),
                    authenticating: associatedData)
            }
        }
        return try opened.get()
    }

    #if canImport(CryptoBoringWrapper)
    /// A `Data` over `bytes` that neither copies nor frees them; used only while `bytes` lives.
    private static func borrowed(_ bytes: UnsafeRawBufferPointer) -> Data {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return Data() }
        return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count, deallocator: .none)
    }
    #endif
}

/// Why an AES-GCM open failed. Says nothing of the key or the bytes.
public enum AESGCMContextError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The tag does not verify.
    case authenticationFailure

    public var description: String {
        switch self {
        case .authenticationFailure: "the sealed bytes do not authenticate"
        }
    }
}
