import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusWire

/// A prekey bundle to and from its wire form (docs/PROTOCOL.md, "Chat"). Decoding checks sizes
/// only; the sender verifies every signature with ``PrekeyBundle/verified(now:)`` before use.
extension PrekeyBundle {
    /// The bundle as it travels.
    public var wire: WirePrekeyBundle {
        .with { bundle in
            bundle.identityKey = identityKey.rawRepresentation
            bundle.identityDh = identityDH.publicKey
            bundle.identityDhSignature = identityDH.signature
            bundle.signedPrekey = Self.wire(signedPrekey)
            bundle.pqPrekey = Self.wire(pqPrekey)
            bundle.envelopeKey = Self.wire(envelopeKey)
            if let oneTime = oneTimePrekey {
                bundle.oneTimePrekey = .with {
                    $0.id = oneTime.id
                    $0.publicKey = Data(oneTime.publicKey)
                }
            }
        }
    }

    /// A bundle from its wire form.
    /// - Throws: ``BundleDecodingError`` when a key has the wrong size or a part is missing.
    public init(wire: WirePrekeyBundle) throws(BundleDecodingError) {
        guard wire.hasSignedPrekey, wire.hasPqPrekey, wire.hasEnvelopeKey, wire.identityDh.count == 32,
            wire.identityDhSignature.count == 64,
            let identity = try? IdentityPublicKey(rawRepresentation: wire.identityKey)
        else { throw .malformed }
        let oneTime: OneTimePrekey?
        if wire.hasOneTimePrekey {
            guard wire.oneTimePrekey.publicKey.count == 32 else { throw .malformed }
            oneTime = OneTimePrekey(id: wire.oneTimePrekey.id, publicKey: Array(wire.oneTimePrekey.publicKey))
        } else {
            oneTime = nil
        }
        self.init(
            identityKey: identity,
            identityDH: KeyBinding(
                purpose: .identityDH, publicKey: wire.identityDh, signature: wire.identityDhSignature),
            signedPrekey: try Self.signedKey(wire.signedPrekey, purpose: .signedPrekey),
            pqPrekey: try Self.signedKey(wire.pqPrekey, purpose: .pqPrekey),
            envelopeKey: try Self.signedKey(wire.envelopeKey, purpose: .envelopeKey),
            oneTimePrekey: oneTime)
    }

    static func wire(_ key: SignedPrekey) -> WireSignedKey {
        .with {
            $0.id = key.id
            $0.expiresAt = key.expiresAt
            $0.publicKey = Data(key.publicKey)
            $0.signature = Data(key.signature)
        }
    }

    /// The largest public key in a bundle: an X-Wing key (1,216 bytes); ML-KEM-768 is 1,184.
    static let maximumPublicKeyBytes = 1_216

    static func signedKey(_ wire: WireSignedKey, purpose: SignaturePurpose) throws(BundleDecodingError) -> SignedPrekey
    {
        guard wire.signature.count == 64, !wire.publicKey.isEmpty, wire.publicKey.count <= maximumPublicKeyBytes else {
            throw .malformed
        }
        return SignedPrekey(
            purpose: purpose, id: wire.id, expiresAt: wire.expiresAt, publicKey: Array(wire.publicKey),
            signature: Array(wire.signature))
    }
}

/// A bundle whose wire form is not well formed.
public enum BundleDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    case malformed
    public var description: String { "the prekey bundle is malformed" }
}
