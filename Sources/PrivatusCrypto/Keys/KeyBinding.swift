import Crypto
import Foundation
import PrivatusCore

/// An X25519 public key bound to an identity by a purpose-tagged signature.
///
/// The signature covers `"Privatus-v1/" ‖ purpose ‖ 0x00 ‖ key` (the 32-byte raw X25519 key).
/// ``verifiedKey(signedBy:)`` is how a verifier obtains the key: it returns the very key that the
/// signature covers, so the checked key is the key that gets used.
public struct KeyBinding: Sendable, Hashable {
    /// What the key is for.
    public let purpose: SignaturePurpose
    /// The raw 32-byte X25519 public key.
    public let publicKey: Data
    /// The 64-byte Ed25519 signature.
    public let signature: Data

    /// Binds `key` to `identity` for `purpose`.
    public init(key: Curve25519.KeyAgreement.PublicKey, purpose: SignaturePurpose, identity: IdentityKey) {
        self.purpose = purpose
        self.publicKey = key.rawRepresentation
        self.signature = identity.signature(over: key.rawRepresentation, purpose: purpose)
    }

    /// A binding as read from storage or the network; nothing is checked until
    /// ``verifiedKey(signedBy:)``.
    public init(purpose: SignaturePurpose, publicKey: Data, signature: Data) {
        self.purpose = purpose
        self.publicKey = publicKey
        self.signature = signature
    }

    /// Checks the signature over the stored bytes and returns the key it covers.
    /// - Throws: ``KeyError/invalidSignature`` when the signature does not verify for this purpose
    ///   and identity; ``KeyError/invalidKeyEncoding`` when the key is not 32 bytes.
    public func verifiedKey(signedBy identity: IdentityPublicKey) throws(KeyError) -> Curve25519.KeyAgreement.PublicKey
    {
        guard identity.isValidSignature(signature, over: publicKey, purpose: purpose) else {
            throw KeyError.invalidSignature
        }
        do {
            return try Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey)
        } catch {
            throw KeyError.invalidKeyEncoding
        }
    }
}
