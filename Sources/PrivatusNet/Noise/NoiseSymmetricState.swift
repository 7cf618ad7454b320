import Crypto
import Foundation

/// Noise's `SymmetricState` (revision 34, §5.2) for `SHA256`: the chaining key `ck`, the
/// handshake hash `h` and a ``NoiseCipherState``.
///
/// `HKDF(ck, ikm, 2)` of §4.3 is RFC 5869 HKDF-SHA256 with salt `ck`, input `ikm`, empty info and
/// 64 output bytes: the extract step is `HMAC(ck, ikm)`, and the expand step's first two blocks
/// are exactly Noise's `output1 = HMAC(temp, 0x01)` and `output2 = HMAC(temp, output1 ‖ 0x02)`.
struct NoiseSymmetricState: Sendable {
    /// `HASHLEN` for SHA-256.
    static let hashLength = 32

    /// The cipher state keyed by the latest `MixKey`.
    private(set) var cipher: NoiseCipherState
    /// `ck`.
    private(set) var chainingKey: SymmetricKey
    /// `h`, the handshake hash.
    private(set) var hash: Data

    /// `InitializeSymmetric(protocol_name)`: `h` is the name zero-padded to `HASHLEN` bytes, or its
    /// hash when longer; `ck = h`; the cipher state is empty.
    init(protocolName: String) {
        let name = Data(protocolName.utf8)
        if name.count <= Self.hashLength {
            hash = name + Data(count: Self.hashLength - name.count)
        } else {
            hash = Data(SHA256.hash(data: name))
        }
        chainingKey = SymmetricKey(data: hash)
        cipher = NoiseCipherState()
    }

    /// `MixKey(ikm)`: `ck, temp_k = HKDF(ck, ikm, 2)`; the cipher state is keyed with `temp_k`
    /// (32 bytes, so no truncation is needed) and its nonce starts again at zero.
    mutating func mixKey(_ inputKeyMaterial: SymmetricKey) {
        let (chainingKey, key) = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial)
        self.chainingKey = chainingKey
        cipher = NoiseCipherState(key: key)
    }

    /// `MixHash(data)`: `h = SHA-256(h ‖ data)`.
    mutating func mixHash(_ data: some DataProtocol) {
        var hasher = SHA256()
        hasher.update(data: hash)
        hasher.update(data: data)
        hash = Data(hasher.finalize())
    }

    /// `EncryptAndHash(plaintext)`: encrypts with `h` as associated data, then mixes the ciphertext
    /// into `h`.
    mutating func encryptAndHash(_ plaintext: some DataProtocol) throws(NoiseError) -> Data {
        let ciphertext = try cipher.encrypt(associatedData: hash, plaintext: plaintext)
        mixHash(ciphertext)
        return ciphertext
    }

    /// `DecryptAndHash(ciphertext)`: decrypts with `h` as associated data, then mixes the ciphertext
    /// into `h`.
    mutating func decryptAndHash(_ ciphertext: some DataProtocol) throws(NoiseError) -> Data {
        let plaintext = try cipher.decrypt(associatedData: hash, ciphertext: ciphertext)
        mixHash(ciphertext)
        return plaintext
    }

    /// `Split()`: `temp_k1, temp_k2 = HKDF(ck, empty, 2)`; the initiator sends with the first,
    /// the responder with the second.
    func split() -> (initiatorToResponder: NoiseCipherState, responderToInitiator: NoiseCipherState) {
        let (first, second) = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: SymmetricKey(data: Data()))
        return (NoiseCipherState(key: first), NoiseCipherState(key: second))
    }

    /// `HKDF(ck, ikm, 2)` with SHA-256 (§4.3), through swift-crypto's RFC 5869 HKDF.
    static func hkdf(chainingKey: SymmetricKey, inputKeyMaterial: SymmetricKey) -> (SymmetricKey, SymmetricKey) {
        let output = chainingKey.withUnsafeBytes { salt in
            HKDF<SHA256>.deriveKey(inputKeyMaterial: inputKeyMaterial, salt: salt, outputByteCount: 2 * hashLength)
        }
        return output.withUnsafeBytes { bytes in
            (
                SymmetricKey(data: UnsafeRawBufferPointer(rebasing: bytes[0..<hashLength])),
                SymmetricKey(data: UnsafeRawBufferPointer(rebasing: bytes[hashLength..<2 * hashLength]))
            )
        }
    }
}
