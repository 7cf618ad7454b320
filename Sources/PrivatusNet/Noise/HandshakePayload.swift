import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto

/// The payload of Privatus handshake messages 2 and 3: who the sender is, and its signature
/// binding its Noise static key to that identity.
///
/// ```
/// offset size
/// 0      1    format version = 1
/// 1      32   Ed25519 identity public key
/// 33     64   Ed25519 signature over "Privatus-v1/" ‖ "noise-static" ‖ 0x00 ‖ Noise static key
/// ```
///
/// The signed Noise static key is not in the payload: the receiver takes the remote static key
/// that the handshake itself authenticated, so the key it checks is the key in use.
struct HandshakePayload: Sendable, Hashable {
    /// The only format version so far.
    static let currentVersion: UInt8 = 1
    /// The length of a version-1 payload.
    static let encodedLength = 1 + 32 + 64

    /// The sender's identity.
    let identityKey: IdentityPublicKey
    /// The identity's signature over the sender's Noise static key, purpose `noise-static`.
    let signature: Data

    /// A payload carrying any identity key and signature bytes (tests use it to forge ones).
    init(identityKey: IdentityPublicKey, signature: Data) {
        precondition(signature.count == 64, "an Ed25519 signature is 64 bytes")
        self.identityKey = identityKey
        self.signature = signature
    }

    /// The payload of `identity`, signing `noiseStatic` for ``SignaturePurpose/noiseStatic``.
    init(identity: IdentityKey, noiseStatic: Curve25519.KeyAgreement.PublicKey) {
        let binding = KeyBinding(key: noiseStatic, purpose: .noiseStatic, identity: identity)
        self.init(identityKey: identity.publicKey, signature: binding.signature)
    }

    /// The 97 bytes of the version-1 layout.
    var encoded: Data {
        var bytes = Data(capacity: Self.encodedLength)
        bytes.append(Self.currentVersion)
        bytes.append(identityKey.rawRepresentation)
        bytes.append(signature)
        return bytes
    }

    /// Parses a payload: the version byte first (another version may have another layout), then
    /// the exact length, before anything is copied out of it.
    /// - Throws: ``NoiseError/unsupportedPayloadVersion``; ``NoiseError/malformedPayload`` for an
    ///   empty payload, any other length, or an identity key that is not one.
    init(decoding bytes: Data) throws(NoiseError) {
        guard let version = bytes.first else { throw .malformedPayload }
        guard version == Self.currentVersion else { throw .unsupportedPayloadVersion }
        guard bytes.count == Self.encodedLength else { throw .malformedPayload }
        let start = bytes.startIndex
        do {
            identityKey = try IdentityPublicKey(rawRepresentation: bytes[start + 1..<start + 33])
        } catch {
            throw .malformedPayload
        }
        signature = Data(bytes[start + 33..<start + Self.encodedLength])
    }

    /// Checks that the signature binds `staticKey` — the remote static key the handshake used — to
    /// ``identityKey`` for ``SignaturePurpose/noiseStatic``.
    /// - Throws: ``NoiseError/invalidSignature``.
    func verify(staticKey: Curve25519.KeyAgreement.PublicKey) throws(NoiseError) {
        let binding = KeyBinding(purpose: .noiseStatic, publicKey: staticKey.rawRepresentation, signature: signature)
        do {
            let bound = try binding.verifiedKey(signedBy: identityKey)
            guard bound.rawRepresentation == staticKey.rawRepresentation else { throw KeyError.invalidSignature }
        } catch {
            throw .invalidSignature
        }
    }
}
