import Crypto
import Foundation
import PrivatusCore

/// Encapsulates a shared secret to an ML-KEM-768 public key. Behind a protocol so that tests and
/// vectors can fix the (ciphertext, secret) pair; the product uses ``MLKEMEncapsulation``.
public protocol KEMEncapsulating: Sendable {
    func encapsulate(to key: MLKEM768.PublicKey) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8])
}

/// Real ML-KEM-768 encapsulation (FIPS 203) through swift-crypto.
public struct MLKEMEncapsulation: KEMEncapsulating {
    public init() {}

    public func encapsulate(to key: MLKEM768.PublicKey) throws -> (ciphertext: [UInt8], sharedSecret: [UInt8]) {
        let result = try key.encapsulate()
        return (Array(result.encapsulated), result.sharedSecret.withUnsafeBytes { Array($0) })
    }
}

/// The header of a session's first message: what the responder needs to run PQXDH.
///
/// ```
/// version u8 (1) ‖ initiator identity key (32) ‖ initiator identity-DH key (32)
/// ‖ its identity-dh signature (64) ‖ ephemeral key (32) ‖ signed prekey id u32 ‖ PQ prekey id u32
/// ‖ one-time prekey flag u8 (0 or 1) ‖ one-time prekey id u32 (0 when absent)
/// ‖ KEM ciphertext (1088)
/// ```
public struct InitialHeader: Sendable, Hashable {
    public static let version: UInt8 = 1
    public static let kemCiphertextSize = 1088
    public static let encodedSize = 1 + 32 + 32 + 64 + 32 + 4 + 4 + 1 + 4 + kemCiphertextSize

    public let identityKey: [UInt8]
    public let identityDH: [UInt8]
    public let identityDHSignature: [UInt8]
    public let ephemeralKey: [UInt8]
    public let signedPrekeyID: UInt32
    public let pqPrekeyID: UInt32
    public let oneTimePrekeyID: UInt32?
    public let kemCiphertext: [UInt8]

    public var encoded: [UInt8] {
        var out: [UInt8] = [Self.version]
        out += identityKey + identityDH + identityDHSignature + ephemeralKey
        out.appendBigEndian(signedPrekeyID)
        out.appendBigEndian(pqPrekeyID)
        out.append(oneTimePrekeyID == nil ? 0 : 1)
        out.appendBigEndian(oneTimePrekeyID ?? 0)
        return out + kemCiphertext
    }

    /// Parses the header at the start of `bytes`; returns it and the bytes after it.
    public static func decode(_ bytes: [UInt8]) throws(SessionError) -> (InitialHeader, [UInt8]) {
        guard bytes.count >= encodedSize, bytes.count <= encodedSize + RatchetMessage.maximumSize else {
            throw .malformedMessage
        }
        var reader = ByteReader(bytes)
        guard reader.readUInt8() == version else { throw .unsupportedVersion }
        let identityKey = reader.read(32)!
        let identityDH = reader.read(32)!
        let signature = reader.read(64)!
        let ephemeral = reader.read(32)!
        // X25519 ignores bit 255 and reduces mod p, so several encodings give one key; only the
        // canonical one is accepted, or a flipped bit would slip past the replay cache.
        guard isCanonicalX25519(ephemeral) else { throw .malformedKey }
        let spk = reader.readUInt32()!
        let pq = reader.readUInt32()!
        let flag = reader.readUInt8()!
        let otpk = reader.readUInt32()!
        guard flag <= 1, flag == 1 || otpk == 0 else { throw .malformedMessage }
        let ciphertext = reader.read(kemCiphertextSize)!
        let header = InitialHeader(
            identityKey: identityKey,
            identityDH: identityDH,
            identityDHSignature: signature,
            ephemeralKey: ephemeral,
            signedPrekeyID: spk,
            pqPrekeyID: pq,
            oneTimePrekeyID: flag == 1 ? otpk : nil,
            kemCiphertext: ciphertext
        )
        return (header, reader.read(reader.remaining)!)
    }
}

/// Whether a 32-byte X25519 public key is in canonical form: bit 255 clear and the value below
/// p = 2^255 − 19 (little-endian).
func isCanonicalX25519(_ key: [UInt8]) -> Bool {
    guard key.count == 32, key[31] & 0x80 == 0 else { return false }
    // Values ≥ p are 2^255 − 19 … 2^255 − 1: 0xed…0xff, then 30 bytes of 0xff, then 0x7f.
    let belowP = key[31] != 0x7f || key[1..<31].contains { $0 != 0xff } || key[0] < 0xed
    return belowP
}

/// Signal's PQXDH key agreement (revision 3), composed from swift-crypto: X25519, ML-KEM-768,
/// HKDF-SHA256. Both roles are pure functions; docs/PROTOCOL.md lists every input.
public enum PQXDH {
    /// The HKDF info: protocol, version and suite.
    public static let info = Array("Privatus-v1_X25519_SHA-256_ML-KEM-768".utf8)
    /// The version byte that starts the associated data.
    public static let version: UInt8 = 1

    /// What the initiator gets: the shared secret, the session's associated data and the header
    /// to send.
    public struct Initiation: Sendable {
        public let sharedSecret: [UInt8]
        public let associatedData: [UInt8]
        public let header: InitialHeader
        /// The responder's signed prekey: the first ratchet public key of the responder.
        public let responderRatchetKey: Curve25519.KeyAgreement.PublicKey
        public let responder: IdentityPublicKey
    }

    /// The initiator's side: checks the bundle, runs DH1..DH4 and the encapsulation.
    public static func initiate(
        from keys: IdentityKeys,
        to bundle: PrekeyBundle,
        now: UInt64,
        ephemeral: Curve25519.KeyAgreement.PrivateKey = .init(),
        kem: some KEMEncapsulating = MLKEMEncapsulation()
    ) throws(SessionError) -> Initiation {
        let peer = try bundle.verified(now: now)
        var material = [UInt8](repeating: 0xff, count: 32)
        material += try agree(keys.identityDH, peer.signedPrekey)
        material += try agree(ephemeral, peer.identityDH)
        material += try agree(ephemeral, peer.signedPrekey)
        if let oneTime = peer.oneTimePrekey { material += try agree(ephemeral, oneTime) }
        let encapsulation: (ciphertext: [UInt8], sharedSecret: [UInt8])
        do {
            encapsulation = try kem.encapsulate(to: peer.pqPrekey)
        } catch {
            throw .malformedKey
        }
        guard encapsulation.ciphertext.count == InitialHeader.kemCiphertextSize else { throw .malformedKey }
        material += encapsulation.sharedSecret
        let own = keys.publicIdentity
        let header = InitialHeader(
            identityKey: Array(own.identityKey.rawRepresentation),
            identityDH: Array(own.identityDH.publicKey),
            identityDHSignature: Array(own.identityDH.signature),
            ephemeralKey: Array(ephemeral.publicKey.rawRepresentation),
            signedPrekeyID: peer.signedPrekeyID,
            pqPrekeyID: peer.pqPrekeyID,
            oneTimePrekeyID: peer.oneTimePrekeyID,
            kemCiphertext: encapsulation.ciphertext
        )
        return Initiation(
            sharedSecret: deriveSecret(material),
            associatedData: associatedData(
                initiator: (Array(own.identityKey.rawRepresentation), Array(own.identityDH.publicKey)),
                responder: (Array(peer.identityKey.rawRepresentation), Array(peer.identityDH.rawRepresentation))
            ),
            header: header,
            responderRatchetKey: peer.signedPrekey,
            responder: peer.identityKey
        )
    }

    /// What the responder gets from a valid header.
    public struct Response: Sendable {
        public let sharedSecret: [UInt8]
        public let associatedData: [UInt8]
        public let initiator: IdentityPublicKey
    }

    /// The responder's side, given the private prekeys the header names.
    /// - Throws: ``SessionError/badSignature`` when the initiator's identity-DH key is not bound to
    ///   its identity; ``SessionError/lowOrderPoint``; ``SessionError/malformedKey``.
    public static func respond(
        as keys: IdentityKeys,
        to header: InitialHeader,
        signedPrekey: Curve25519.KeyAgreement.PrivateKey,
        pqPrekey: MLKEM768.PrivateKey,
        oneTimePrekey: Curve25519.KeyAgreement.PrivateKey?
    ) throws(SessionError) -> Response {
        guard (header.oneTimePrekeyID == nil) == (oneTimePrekey == nil) else { throw .unknownPrekey }
        let initiator: IdentityPublicKey
        let initiatorDH: Curve25519.KeyAgreement.PublicKey
        let ephemeral: Curve25519.KeyAgreement.PublicKey
        do {
            initiator = try IdentityPublicKey(rawRepresentation: header.identityKey)
            ephemeral = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: header.ephemeralKey)
        } catch {
            throw .malformedKey
        }
        do {
            initiatorDH = try KeyBinding(
                purpose: .identityDH,
                publicKey: Data(header.identityDH),
                signature: Data(header.identityDHSignature)
            ).verifiedKey(signedBy: initiator)
        } catch {
            throw .badSignature
        }
        var material = [UInt8](repeating: 0xff, count: 32)
        material += try agree(signedPrekey, initiatorDH)
        material += try agree(keys.identityDH, ephemeral)
        material += try agree(signedPrekey, ephemeral)
        if let oneTimePrekey { material += try agree(oneTimePrekey, ephemeral) }
        do {
            material += try pqPrekey.decapsulate(header.kemCiphertext).withUnsafeBytes { Array($0) }
        } catch {
            throw .malformedKey
        }
        return Response(
            sharedSecret: deriveSecret(material),
            associatedData: associatedData(
                initiator: (header.identityKey, header.identityDH),
                responder: (
                    Array(keys.identity.publicKey.rawRepresentation), Array(keys.identityDH.publicKey.rawRepresentation)
                )
            ),
            initiator: initiator
        )
    }

    /// `version ‖ Ed25519_A ‖ X25519_A ‖ Ed25519_B ‖ X25519_B`, initiator first.
    static func associatedData(initiator: ([UInt8], [UInt8]), responder: ([UInt8], [UInt8])) -> [UInt8] {
        [version] + initiator.0 + initiator.1 + responder.0 + responder.1
    }

    /// HKDF-SHA256 with a zero salt of hash length over `0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS`.
    static func deriveSecret(_ material: [UInt8]) -> [UInt8] {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: material),
            salt: [UInt8](repeating: 0, count: 32),
            info: info,
            outputByteCount: 32
        ).withUnsafeBytes { Array($0) }
    }

    /// X25519, refusing an all-zero output (a low-order public key).
    static func agree(
        _ privateKey: Curve25519.KeyAgreement.PrivateKey,
        _ publicKey: Curve25519.KeyAgreement.PublicKey
    ) throws(SessionError) -> [UInt8] {
        let shared: [UInt8]
        do {
            shared = try privateKey.sharedSecretFromKeyAgreement(with: publicKey).withUnsafeBytes { Array($0) }
        } catch {
            throw .lowOrderPoint
        }
        guard shared.contains(where: { $0 != 0 }) else { throw .lowOrderPoint }
        return shared
    }
}
