import Crypto
import Foundation
import PrivatusCore

/// A public key published in a bundle, signed by the identity for its purpose.
///
/// The signature covers `"Privatus-v1/" ‖ purpose ‖ 0x00 ‖ id u32 ‖ expiresAt u64 ‖ key`, with
/// `expiresAt` in Unix seconds. Used for the signed X25519 prekey (``SignaturePurpose/signedPrekey``),
/// the ML-KEM-768 prekey (``SignaturePurpose/pqPrekey``) and the X-Wing envelope key
/// (``SignaturePurpose/envelopeKey``).
public struct SignedPrekey: Sendable, Hashable {
    public let purpose: SignaturePurpose
    public let id: UInt32
    /// Unix seconds after which senders refuse the key.
    public let expiresAt: UInt64
    public let publicKey: [UInt8]
    public let signature: [UInt8]

    /// How long after creation senders accept a signed prekey: 30 days.
    public static let acceptedFor: UInt64 = 30 * 24 * 3600

    public init(purpose: SignaturePurpose, id: UInt32, expiresAt: UInt64, publicKey: [UInt8], signature: [UInt8]) {
        self.purpose = purpose
        self.id = id
        self.expiresAt = expiresAt
        self.publicKey = publicKey
        self.signature = signature
    }

    /// Signs `publicKey` for `purpose`.
    public init(purpose: SignaturePurpose, id: UInt32, expiresAt: UInt64, publicKey: [UInt8], identity: IdentityKey) {
        let fields = Self.signedFields(id: id, expiresAt: expiresAt, publicKey: publicKey)
        self.init(
            purpose: purpose,
            id: id,
            expiresAt: expiresAt,
            publicKey: publicKey,
            signature: Array(identity.signature(over: fields, purpose: purpose))
        )
    }

    static func signedFields(id: UInt32, expiresAt: UInt64, publicKey: [UInt8]) -> [UInt8] {
        var fields: [UInt8] = []
        fields.appendBigEndian(id)
        fields.appendBigEndian(expiresAt)
        return fields + publicKey
    }

    /// Checks the signature for `expected` purpose and the expiry as a sender must: refused when
    /// past `expiresAt`, or when `expiresAt` is further than 30 days (plus a day of clock skew)
    /// ahead, which no honest owner signs.
    public func verify(
        purpose expected: SignaturePurpose, signedBy identity: IdentityPublicKey, now: UInt64
    ) throws(SessionError) {
        guard purpose == expected,
            identity.isValidSignature(
                signature,
                over: Self.signedFields(id: id, expiresAt: expiresAt, publicKey: publicKey),
                purpose: expected
            )
        else { throw .badSignature }
        guard now < expiresAt, expiresAt - now <= Self.acceptedFor + 24 * 3600 else { throw .prekeyExpired }
    }
}

/// A one-time X25519 prekey. Unsigned, as in Signal: it is fetched from the owner's node over
/// an authenticated link, and a forged one only costs the sender the extra DH4 protection.
public struct OneTimePrekey: Sendable, Hashable {
    public let id: UInt32
    public let publicKey: [UInt8]

    public init(id: UInt32, publicKey: [UInt8]) {
        self.id = id
        self.publicKey = publicKey
    }
}

/// What a sender needs to start a session with a user who may be offline.
public struct PrekeyBundle: Sendable, Hashable {
    public let identityKey: IdentityPublicKey
    /// The identity-DH key with its ``SignaturePurpose/identityDH`` binding.
    public let identityDH: KeyBinding
    public let signedPrekey: SignedPrekey
    public let pqPrekey: SignedPrekey
    public let envelopeKey: SignedPrekey
    public let oneTimePrekey: OneTimePrekey?

    public init(
        identityKey: IdentityPublicKey,
        identityDH: KeyBinding,
        signedPrekey: SignedPrekey,
        pqPrekey: SignedPrekey,
        envelopeKey: SignedPrekey,
        oneTimePrekey: OneTimePrekey?
    ) {
        self.identityKey = identityKey
        self.identityDH = identityDH
        self.signedPrekey = signedPrekey
        self.pqPrekey = pqPrekey
        self.envelopeKey = envelopeKey
        self.oneTimePrekey = oneTimePrekey
    }

    /// The PeerID of the bundle's owner.
    public var peerID: PeerID { identityKey.peerID }

    /// Every check a sender makes before using the bundle; returns the keys to use, exactly the
    /// ones the signatures cover.
    public func verified(now: UInt64) throws(SessionError) -> VerifiedBundle {
        let dh: Curve25519.KeyAgreement.PublicKey
        do {
            dh = try identityDH.verifiedKey(signedBy: identityKey)
        } catch {
            throw .badSignature
        }
        guard identityDH.purpose == .identityDH else { throw .badSignature }
        try signedPrekey.verify(purpose: .signedPrekey, signedBy: identityKey, now: now)
        try pqPrekey.verify(purpose: .pqPrekey, signedBy: identityKey, now: now)
        try envelopeKey.verify(purpose: .envelopeKey, signedBy: identityKey, now: now)
        do {
            return VerifiedBundle(
                identityKey: identityKey,
                identityDH: dh,
                signedPrekeyID: signedPrekey.id,
                signedPrekey: try Curve25519.KeyAgreement.PublicKey(rawRepresentation: signedPrekey.publicKey),
                pqPrekeyID: pqPrekey.id,
                pqPrekey: try MLKEM768.PublicKey(rawRepresentation: pqPrekey.publicKey),
                oneTimePrekeyID: oneTimePrekey?.id,
                oneTimePrekey: try oneTimePrekey.map {
                    try Curve25519.KeyAgreement.PublicKey(rawRepresentation: $0.publicKey)
                }
            )
        } catch {
            throw .malformedKey
        }
    }
}

/// A bundle whose signatures and expiry have been checked.
public struct VerifiedBundle: Sendable {
    public let identityKey: IdentityPublicKey
    public let identityDH: Curve25519.KeyAgreement.PublicKey
    public let signedPrekeyID: UInt32
    public let signedPrekey: Curve25519.KeyAgreement.PublicKey
    public let pqPrekeyID: UInt32
    public let pqPrekey: MLKEM768.PublicKey
    public let oneTimePrekeyID: UInt32?
    public let oneTimePrekey: Curve25519.KeyAgreement.PublicKey?
}
