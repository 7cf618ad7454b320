import Crypto
import Foundation

/// Noise's `CipherState` (revision 34, §5.1) for the `AESGCM` cipher: a key `k` and a 64-bit
/// nonce counter `n`.
///
/// The AES-256-GCM nonce is 32 zero bits followed by `n` as a big-endian 64-bit integer (§12.4).
/// `n = 2^64 − 1` is reserved (§5.1): once `n` reaches it, encryption and decryption fail with
/// ``NoiseError/nonceExhausted``, so a nonce is never used twice under one key. A failed
/// decryption leaves `n` unchanged.
struct NoiseCipherState: Sendable {
    /// The AES-256-GCM key length.
    static let keyLength = 32
    /// The AES-GCM authentication tag length.
    static let tagLength = 16
    /// The length of an AES-GCM nonce.
    static let gcmNonceLength = 12

    /// `k`, or `nil` while the cipher state is empty (then encryption is the identity).
    private(set) var key: SymmetricKey?
    /// `n`: the nonce of the next message.
    var nonce: UInt64 = 0

    /// An empty cipher state (`InitializeKey(empty)`).
    init() {
        self.key = nil
    }

    /// `InitializeKey(k)`: a cipher state with key `k` and `n = 0`.
    init(key: SymmetricKey) {
        precondition(key.bitCount == Self.keyLength * 8, "a Noise AESGCM key is 32 bytes")
        self.key = key
    }

    /// `HasKey()`.
    var hasKey: Bool { key != nil }

    /// `EncryptWithAd(ad, plaintext)`: the ciphertext followed by the 16-byte tag, or the plaintext
    /// itself while the state has no key.
    ///
    /// The result may be a slice of a larger buffer (as swift-crypto's `SealedBox.ciphertext` is):
    /// index it from its `startIndex`.
    /// - Throws: ``NoiseError/nonceExhausted`` when `n` has reached 2^64 − 1.
    mutating func encrypt(associatedData: some DataProtocol, plaintext: some DataProtocol) throws(NoiseError) -> Data {
        guard let key else { return Data(plaintext) }
        guard nonce != .max else { throw .nonceExhausted }
        let combined = Self.seal(plaintext, key: key, nonce: nonce, associatedData: associatedData)
        nonce += 1
        return combined.dropFirst(Self.gcmNonceLength)
    }

    /// `DecryptWithAd(ad, ciphertext)`: the plaintext, or the ciphertext itself while the state has no
    /// key. On failure `n` does not advance.
    /// - Throws: ``NoiseError/malformedMessage`` for a ciphertext shorter than the tag,
    ///   ``NoiseError/decryptionFailed``, ``NoiseError/nonceExhausted``.
    mutating func decrypt(associatedData: some DataProtocol, ciphertext: some DataProtocol) throws(NoiseError) -> Data {
        guard let key else { return Data(ciphertext) }
        guard nonce != .max else { throw .nonceExhausted }
        guard ciphertext.count >= Self.tagLength else { throw .malformedMessage }
        let plaintext: Data
        do {
            // nonce ‖ ciphertext ‖ tag, built here in one buffer: swift-crypto's
            // `SealedBox(nonce:ciphertext:tag:)` is generic and not inlinable, and appends the
            // message from an unspecialized collection (≈ 4 µs for 64 bytes from a `ByteBufferView`).
            var combined = Data(capacity: Self.gcmNonceLength + ciphertext.count)
            withUnsafeBytes(of: Self.gcmNonceWords(nonce)) { combined.append(contentsOf: $0) }
            combined.append(contentsOf: ciphertext)
            let box = try AES.GCM.SealedBox(combined: combined)
            plaintext = try AES.GCM.open(box, using: key, authenticating: associatedData)
        } catch {
            throw .decryptionFailed
        }
        nonce += 1
        return plaintext
    }

    /// `DecryptWithAd(empty, ciphertext)` for a transport message read in place (a slice of a
    /// receive buffer): the same as ``decrypt(associatedData:ciphertext:)`` with empty associated
    /// data. The message is copied once, into swift-crypto's sealed box, and decrypted from there.
    mutating func decrypt(contiguous ciphertext: UnsafeRawBufferPointer) throws(NoiseError) -> Data {
        guard let key else { return Data(ciphertext) }
        guard nonce != .max else { throw .nonceExhausted }
        guard ciphertext.count >= Self.tagLength else { throw .malformedMessage }
        let split = ciphertext.count - Self.tagLength
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(
                nonce: Self.gcmNonce(nonce), ciphertext: UnsafeRawBufferPointer(rebasing: ciphertext[..<split]),
                tag: UnsafeRawBufferPointer(rebasing: ciphertext[split...]))
            plaintext = try AES.GCM.open(box, using: key)
        } catch {
            throw .decryptionFailed
        }
        nonce += 1
        return plaintext
    }

    /// `Rekey()` (§4.2, §11.3): `k = REKEY(k)`, the first 32 bytes of
    /// `ENCRYPT(k, 2^64 − 1, empty, 32 zero bytes)`. The nonce is not reset.
    mutating func rekey() {
        guard let key else { return }
        let combined = Self.seal(Self.zeros, key: key, nonce: .max, associatedData: Data())
        let start = combined.startIndex + Self.gcmNonceLength
        self.key = SymmetricKey(data: combined[start..<start + Self.keyLength])
    }

    private static let zeros = Data(count: keyLength)

    /// AES-256-GCM: nonce ‖ ciphertext ‖ tag.
    private static func seal(
        _ plaintext: some DataProtocol, key: SymmetricKey, nonce: UInt64, associatedData: some DataProtocol
    ) -> Data {
        do {
            let box = try AES.GCM.seal(plaintext, using: key, nonce: gcmNonce(nonce), authenticating: associatedData)
            guard let combined = box.combined else { preconditionFailure("a 12-byte nonce always has a combined form") }
            return combined
        } catch {
            // AES-256-GCM sealing cannot fail for a 32-byte key and a 12-byte nonce; a failure is a bug.
            preconditionFailure("AES-GCM sealing failed")
        }
    }

    /// The 12 bytes of the AES-GCM nonce for counter `n` (32 zero bits ‖ `n` big-endian), in
    /// memory order.
    static func gcmNonceWords(_ n: UInt64) -> (UInt32, UInt32, UInt32) {
        (0, UInt32(truncatingIfNeeded: n >> 32).bigEndian, UInt32(truncatingIfNeeded: n).bigEndian)
    }

    /// The AES-GCM nonce for counter `n`: 32 zero bits ‖ `n` big-endian. Built on the stack; a
    /// 12-byte `Data` is stored inline, so this allocates nothing.
    static func gcmNonce(_ n: UInt64) -> AES.GCM.Nonce {
        withUnsafeBytes(of: gcmNonceWords(n)) { bytes in
            do {
                return try AES.GCM.Nonce(data: bytes)
            } catch {
                preconditionFailure("a 12-byte AES-GCM nonce is always valid")
            }
        }
    }
}
