import Crypto
import Foundation
import PrivatusCrypto

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
    /// `k` prepared for AES-GCM once, not for every message.
    private var context: AESGCMContext?
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
        self.context = AESGCMContext(key: key)
    }

    /// `HasKey()`.
    var hasKey: Bool { key != nil }

    /// `EncryptWithAd(ad, plaintext)`: the ciphertext followed by the 16-byte tag, or the plaintext
    /// itself while the state has no key.
    /// - Throws: ``NoiseError/nonceExhausted`` when `n` has reached 2^64 − 1.
    mutating func encrypt(associatedData: some DataProtocol, plaintext: some DataProtocol) throws(NoiseError) -> Data {
        guard hasKey else { return Data(plaintext) }
        var (ciphertext, tag) = try seal(associatedData: associatedData, plaintext: plaintext)
        ciphertext.append(tag)
        return ciphertext
    }

    /// `EncryptWithAd(ad, plaintext)` for a state with a key, the ciphertext and the tag in two
    /// buffers (``NoiseTransport/encrypt(_:)`` joins them).
    /// - Throws: ``NoiseError/nonceExhausted`` when `n` has reached 2^64 − 1.
    mutating func seal(
        associatedData: some DataProtocol, plaintext: some DataProtocol
    ) throws(NoiseError) -> (
        ciphertext: Data, tag: Data
    ) {
        guard let context else { preconditionFailure("sealing needs a key") }
        guard nonce != .max else { throw .nonceExhausted }
        let sealed = withUnsafeBytes(of: Self.gcmNonceWords(nonce)) {
            context.seal(plaintext, nonce: $0, authenticating: associatedData)
        }
        nonce += 1
        return sealed
    }

    /// `EncryptWithAd(empty, plaintext)` for a state with a key, into `output` (`plaintext.count +
    /// 16` bytes: the ciphertext, then the tag). `output` may start where `plaintext` does.
    /// - Throws: ``NoiseError/nonceExhausted`` when `n` has reached 2^64 − 1 (nothing is written).
    mutating func seal(
        _ plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(NoiseError) {
        guard let context else { preconditionFailure("sealing needs a key") }
        guard nonce != .max else { throw .nonceExhausted }
        withUnsafeBytes(of: Self.gcmNonceWords(nonce)) {
            context.seal(plaintext, nonce: $0, authenticating: Self.noAssociatedBytes, into: output)
        }
        nonce += 1
    }

    /// `DecryptWithAd(empty, message)` for a state with a key, into `output` (exactly
    /// `message.count − 16` bytes; it may start where `message` does). Returns the plaintext's
    /// length. On failure `n` does not advance.
    /// - Throws: ``NoiseError/malformedMessage`` for a message shorter than the tag,
    ///   ``NoiseError/decryptionFailed``, ``NoiseError/nonceExhausted``.
    mutating func open(
        _ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(NoiseError) -> Int {
        guard let context else { preconditionFailure("opening needs a key") }
        guard nonce != .max else { throw .nonceExhausted }
        guard message.count >= Self.tagLength else { throw .malformedMessage }
        let length: Int
        do {
            length = try withUnsafeBytes(of: Self.gcmNonceWords(nonce)) { (gcmNonce) throws(AESGCMContextError) in
                try context.open(message, nonce: gcmNonce, authenticating: Self.noAssociatedBytes, into: output)
            }
        } catch {
            throw .decryptionFailed
        }
        nonce += 1
        return length
    }

    private static var noAssociatedBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// `DecryptWithAd(ad, ciphertext)`: the plaintext, or the ciphertext itself while the state has no
    /// key. On failure `n` does not advance.
    /// - Throws: ``NoiseError/malformedMessage`` for a ciphertext shorter than the tag,
    ///   ``NoiseError/decryptionFailed``, ``NoiseError/nonceExhausted``.
    mutating func decrypt(associatedData: some DataProtocol, ciphertext: some DataProtocol) throws(NoiseError) -> Data {
        guard hasKey else { return Data(ciphertext) }
        let contiguous = Data(ciphertext)
        let opened: Result<Data, NoiseError> = contiguous.withUnsafeBytes { bytes in
            Result { () throws(NoiseError) in try open(bytes, associatedData: associatedData) }
        }
        return try opened.get()
    }

    private static let noAssociatedData = Data()

    /// Opens `ciphertext ‖ tag` under the next nonce; `n` advances only on success.
    private mutating func open(
        _ message: UnsafeRawBufferPointer, associatedData: some DataProtocol
    ) throws(NoiseError)
        -> Data
    {
        guard let context else { preconditionFailure("opening needs a key") }
        guard nonce != .max else { throw .nonceExhausted }
        guard message.count >= Self.tagLength else { throw .malformedMessage }
        let split = message.count - Self.tagLength
        let plaintext: Data
        do {
            plaintext = try withUnsafeBytes(of: Self.gcmNonceWords(nonce)) { (gcmNonce) throws(AESGCMContextError) in
                try context.open(
                    ciphertext: UnsafeRawBufferPointer(rebasing: message[..<split]),
                    tag: UnsafeRawBufferPointer(rebasing: message[split...]), nonce: gcmNonce,
                    authenticating: associatedData)
            }
        } catch {
            throw .decryptionFailed
        }
        nonce += 1
        return plaintext
    }

    /// `Rekey()` (§4.2, §11.3): `k = REKEY(k)`, the first 32 bytes of
    /// `ENCRYPT(k, 2^64 − 1, empty, 32 zero bytes)` — the ciphertext of the zeros. The nonce is not
    /// reset.
    mutating func rekey() {
        guard let context else { return }
        let (ciphertext, _) = withUnsafeBytes(of: Self.gcmNonceWords(.max)) {
            context.seal(Self.zeros, nonce: $0, authenticating: Self.noAssociatedData)
        }
        let key = SymmetricKey(data: ciphertext.prefix(Self.keyLength))
        self.key = key
        self.context = AESGCMContext(key: key)
    }

    private static let zeros = Data(count: keyLength)

    /// The 12 bytes of the AES-GCM nonce for counter `n` (32 zero bits ‖ `n` big-endian), in
    /// memory order.
    static func gcmNonceWords(_ n: UInt64) -> (UInt32, UInt32, UInt32) {
        (0, UInt32(truncatingIfNeeded: n >> 32).bigEndian, UInt32(truncatingIfNeeded: n).bigEndian)
    }
}
