import Crypto
import Foundation
import PrivatusCore

/// Every long-term private key of a profile and the database key: what the keystore seals.
public struct IdentityKeys: Sendable {
    /// The Ed25519 identity.
    public let identity: IdentityKey
    /// The X25519 identity-DH key used in PQXDH.
    public let identityDH: Curve25519.KeyAgreement.PrivateKey
    /// This node's Noise static X25519 key.
    public let noiseStatic: Curve25519.KeyAgreement.PrivateKey
    /// The random 256-bit key of the local database.
    public let databaseKey: SymmetricKey

    /// Generates fresh keys.
    public init() {
        self.init(
            identity: IdentityKey(),
            identityDH: Curve25519.KeyAgreement.PrivateKey(),
            noiseStatic: Curve25519.KeyAgreement.PrivateKey(),
            databaseKey: SymmetricKey(size: .bits256)
        )
    }

    /// Assembles keys restored from the keystore.
    public init(
        identity: IdentityKey,
        identityDH: Curve25519.KeyAgreement.PrivateKey,
        noiseStatic: Curve25519.KeyAgreement.PrivateKey,
        databaseKey: SymmetricKey
    ) {
        self.identity = identity
        self.identityDH = identityDH
        self.noiseStatic = noiseStatic
        self.databaseKey = databaseKey
    }

    /// The public identity: identity key plus each purpose key bound to it.
    public var publicIdentity: PublicIdentity {
        PublicIdentity(
            identityKey: identity.publicKey,
            identityDH: KeyBinding(key: identityDH.publicKey, purpose: .identityDH, identity: identity),
            noiseStatic: KeyBinding(key: noiseStatic.publicKey, purpose: .noiseStatic, identity: identity)
        )
    }
}

/// What a profile may show without the password: its identity key and the bound purpose keys.
public struct PublicIdentity: Sendable, Hashable {
    /// The Ed25519 identity public key.
    public let identityKey: IdentityPublicKey
    /// The identity-DH key, signed for ``SignaturePurpose/identityDH``.
    public let identityDH: KeyBinding
    /// The Noise static key, signed for ``SignaturePurpose/noiseStatic``.
    public let noiseStatic: KeyBinding

    public init(identityKey: IdentityPublicKey, identityDH: KeyBinding, noiseStatic: KeyBinding) {
        self.identityKey = identityKey
        self.identityDH = identityDH
        self.noiseStatic = noiseStatic
    }

    /// The PeerID of the identity key.
    public var peerID: PeerID { identityKey.peerID }

    /// Checks both bindings: each must be signed by the identity key for its own purpose.
    public func validate() throws(KeyError) {
        guard identityDH.purpose == .identityDH, noiseStatic.purpose == .noiseStatic else {
            throw KeyError.invalidSignature
        }
        _ = try identityDH.verifiedKey(signedBy: identityKey)
        _ = try noiseStatic.verifiedKey(signedBy: identityKey)
    }

    /// Whether these public keys are exactly the public halves of `keys`.
    public func matches(_ keys: IdentityKeys) -> Bool {
        identityKey == keys.identity.publicKey
            && identityDH.publicKey == keys.identityDH.publicKey.rawRepresentation
            && noiseStatic.publicKey == keys.noiseStatic.publicKey.rawRepresentation
    }
}
