import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto

/// What a DHT record holds, and which signature purpose covers it.
public enum DHTRecordKind: UInt8, Sendable, Hashable, CaseIterable {
    /// A user's prekey bundle (and addresses while discoverable), signed by the identity.
    case bundle = 1
    /// Where a user's node can be reached, sealed for contacts, signed by a key derived from
    /// the presence secret (not the identity: storing nodes must not learn whose it is).
    case presence = 2

    /// The purpose its signature is made for.
    public var purpose: SignaturePurpose {
        switch self {
        case .bundle: .dhtRecord
        case .presence: .presence
        }
    }

    /// The tag hashed into the record's key.
    var tag: String {
        switch self {
        case .bundle: "bundle"
        case .presence: "presence"
        }
    }

    /// The longest a record of this kind may live (seconds from its signing).
    public var maximumLifetime: UInt64 {
        switch self {
        case .bundle: 8 * 86_400
        case .presence: 2 * 86_400
        }
    }
}

/// A signed DHT record: the exact body bytes that were signed, and the signature. Body:
/// `version u8 (1) ‖ kind u8 ‖ key (32) ‖ sequence u64 ‖ expires u64 (Unix s) ‖ publisher (32,
/// Ed25519) ‖ value length u16 ‖ value`, all big-endian; the signature covers
/// `"Privatus-v1/" ‖ purpose ‖ 0x00 ‖ body` with the kind's purpose. The key is bound to the
/// publisher: `SHA-256(tag ‖ 0x00 ‖ SHA-256(publisher))`, so only the holder of the publisher
/// key can fill it (for a bundle, `SHA-256("bundle" ‖ 0x00 ‖ PeerID)`).
public struct DHTRecord: Sendable, Hashable {
    /// The largest value a record carries (a bundle with its post-quantum keys fits).
    public static let maximumValueBytes = 4_096
    /// The largest encoded record: body plus signature.
    public static let maximumBytes = 1 + 1 + 32 + 8 + 8 + 32 + 2 + maximumValueBytes + 64

    public let kind: DHTRecordKind
    public let key: DHTNodeID
    public let sequence: UInt64
    /// Unix seconds.
    public let expires: UInt64
    /// The Ed25519 public key that signed it.
    public let publisher: [UInt8]
    public let value: [UInt8]
    /// The exact bytes signed, kept as received.
    public let body: [UInt8]
    public let signature: [UInt8]

    /// The key a record of `kind` signed by `publisher` lives at.
    public static func key(kind: DHTRecordKind, publisher: [UInt8]) -> DHTNodeID {
        key(kind: kind, publisherDigest: Array(SHA256.hash(data: publisher)))
    }

    /// The key of `peer`'s bundle record.
    public static func bundleKey(of peer: PeerID) -> DHTNodeID {
        key(kind: .bundle, publisherDigest: peer.bytes)
    }

    static func key(kind: DHTRecordKind, publisherDigest: [UInt8]) -> DHTNodeID {
        let digest = SHA256.hash(data: Array(kind.tag.utf8) + [0] + publisherDigest)
        return DHTNodeID(bytes: Array(digest))!
    }

    /// Signs a new record with a key of its own (a presence record's key, derived from the
    /// presence secret).
    public static func sign(
        kind: DHTRecordKind, sequence: UInt64, expires: UInt64, value: [UInt8],
        with signer: Curve25519.Signing.PrivateKey
    ) throws(DHTRecordError) -> DHTRecord {
        try sign(
            kind: kind, sequence: sequence, expires: expires, value: value,
            publisher: Array(signer.publicKey.rawRepresentation)
        ) { body in
            (try? signer.signature(for: kind.purpose.signedMessage(over: body))).map(Array.init)
        }
    }

    /// Signs a new record with the user's identity (a bundle record).
    public static func sign(
        kind: DHTRecordKind, sequence: UInt64, expires: UInt64, value: [UInt8], with identity: IdentityKey
    ) throws(DHTRecordError) -> DHTRecord {
        try sign(
            kind: kind, sequence: sequence, expires: expires, value: value,
            publisher: Array(identity.publicKey.rawRepresentation)
        ) { body in
            Array(identity.signature(over: body, purpose: kind.purpose))
        }
    }

    static func sign(
        kind: DHTRecordKind, sequence: UInt64, expires: UInt64, value: [UInt8], publisher: [UInt8],
        signing: ([UInt8]) -> [UInt8]?
    ) throws(DHTRecordError) -> DHTRecord {
        guard value.count <= maximumValueBytes else { throw .tooLarge }
        var body: [UInt8] = [1, kind.rawValue]
        body += key(kind: kind, publisher: publisher).bytes
        body.appendBigEndian(sequence)
        body.appendBigEndian(expires)
        body += publisher
        body.appendBigEndian(UInt16(value.count))
        body += value
        guard let signature = signing(body) else { throw .badSignature }
        return try DHTRecord(body: body, signature: signature)
    }

    /// Parses and checks a received record: its layout, its signature for its kind's purpose, and
    /// that its key is the one bound to its publisher. Time and sequence are the store's checks.
    public init(body: [UInt8], signature: [UInt8]) throws(DHTRecordError) {
        try self.init(unverifiedBody: body, signature: signature)
        try verify()
    }

    /// Parses a received record's layout only (no signature checked, no hash computed): what a
    /// node does before it knows the datagram's source is worth a signature check. Call
    /// ``verify()`` before trusting it.
    public init(unverifiedBody body: [UInt8], signature: [UInt8]) throws(DHTRecordError) {
        guard body.count + signature.count <= Self.maximumBytes else { throw .tooLarge }
        var reader = ByteReader(body)
        guard reader.readUInt8() == 1, let kindByte = reader.readUInt8(), let kind = DHTRecordKind(rawValue: kindByte),
            let keyBytes = reader.read(32), let key = DHTNodeID(bytes: keyBytes), let sequence = reader.readUInt64(),
            let expires = reader.readUInt64(), let publisher = reader.read(32), let length = reader.readUInt16(),
            let value = reader.read(Int(length)), reader.remaining == 0, signature.count == 64
        else { throw .malformed }
        self.kind = kind
        self.key = key
        self.sequence = sequence
        self.expires = expires
        self.publisher = publisher
        self.value = value
        self.body = body
        self.signature = signature
    }

    /// Checks the signature over the exact body for the kind's purpose and the key's binding to
    /// the publisher.
    public func verify() throws(DHTRecordError) {
        guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: publisher),
            publicKey.isValidSignature(signature, for: kind.purpose.signedMessage(over: body))
        else { throw .badSignature }
        guard key == Self.key(kind: kind, publisher: publisher) else { throw .wrongKey }
    }
}

/// Why a record was refused. Names no key, publisher or value.
public enum DHTRecordError: Error, Sendable, Hashable, CustomStringConvertible {
    case malformed
    case tooLarge
    /// No valid signature by the publisher for the kind's purpose.
    case badSignature
    /// The key is not the one bound to the publisher.
    case wrongKey
    case expired
    /// It claims to live longer than its kind may.
    case lifetimeTooLong
    /// Its sequence number (signing time) is further ahead than clocks differ.
    case fromTheFuture
    /// The store holds the same or a newer sequence number for the key.
    case notNewer
    /// The publisher, or the network it was stored from, has used its share of the store.
    case overQuota
    /// The store is full.
    case full

    public var description: String {
        switch self {
        case .malformed: "malformed record"
        case .tooLarge: "record too large"
        case .badSignature: "record signature invalid"
        case .wrongKey: "record key not bound to its publisher"
        case .expired: "record expired"
        case .lifetimeTooLong: "record lifetime too long"
        case .notNewer: "record not newer than the stored one"
        case .fromTheFuture: "record sequence ahead of the clock"
        case .overQuota: "record over quota"
        case .full: "record store full"
        }
    }
}
