import Crypto
import Foundation
import PrivatusCore

/// A user's presence secret: what the user gives its contacts so that they, and only they, can
/// find and read where the user's node is now (docs/PROTOCOL.md, "Presence").
///
/// Each day (an epoch: whole days since the Unix epoch, UTC) the secret gives, through
/// HKDF-SHA256 (salt `"privatus presence v1"`, info `label ‖ epoch` as a big-endian u64):
/// - `"sign"`: the seed of an Ed25519 key that signs that day's record. The record's DHT key is
///   bound to this public key, so storing nodes can check the signature without learning whose
///   record it is, and records of two days cannot be linked without the secret.
/// - `"seal"`: a ChaCha20-Poly1305 key sealing the value, with the record's key as associated
///   data, so a storing node cannot read it.
public struct PresenceSecret: Sendable, Hashable {
    public static let byteCount = 32
    /// The length of an epoch (seconds).
    public static let epochSeconds: UInt64 = 86_400

    public let bytes: [UInt8]

    /// A new random secret.
    public init() {
        bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// A secret from its bytes (nil unless exactly 32).
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// The epoch of a time (Unix seconds).
    public static func epoch(at unixSeconds: UInt64) -> UInt64 { unixSeconds / epochSeconds }

    /// The key that signs the record of `epoch`.
    public func signingKey(epoch: UInt64) -> Curve25519.Signing.PrivateKey {
        // A 32-byte seed is always a valid Ed25519 private key.
        try! Curve25519.Signing.PrivateKey(rawRepresentation: derive("sign", epoch: epoch))
    }

    /// Where the record of `epoch` lives in the DHT.
    public func recordKey(epoch: UInt64) -> DHTNodeID {
        DHTRecord.key(kind: .presence, publisher: Array(signingKey(epoch: epoch).publicKey.rawRepresentation))
    }

    /// The record of `epoch` holding `value` sealed: valid until an hour before the end of the
    /// next epoch (so a contact who looks for yesterday's still finds it, and a storing node
    /// whose clock is up to an hour behind does not find it living longer than a presence
    /// record may).
    /// - Parameter sequence: the signing time (Unix ms), so a later record of the day is newer,
    ///   even after a restart within the same second.
    public func record(value: [UInt8], epoch: UInt64, sequence: UInt64) throws(DHTRecordError) -> DHTRecord {
        let signer = signingKey(epoch: epoch)
        let key = DHTRecord.key(kind: .presence, publisher: Array(signer.publicKey.rawRepresentation))
        guard
            let sealed = try? ChaChaPoly.seal(value, using: sealingKey(epoch: epoch), authenticating: key.bytes)
        else { throw .malformed }
        let expires = (epoch + 2) * Self.epochSeconds - 3_600
        return try DHTRecord.sign(
            kind: .presence, sequence: sequence, expires: expires, value: Array(sealed.combined), with: signer)
    }

    /// The value of `record` if it is this secret's record of `epoch`, validly signed and
    /// sealed; nil otherwise (another user's record, a forgery, damage).
    public func open(_ record: DHTRecord, epoch: UInt64) -> [UInt8]? {
        let publisher = Array(signingKey(epoch: epoch).publicKey.rawRepresentation)
        guard record.kind == .presence, record.publisher == publisher, (try? record.verify()) != nil,
            let box = try? ChaChaPoly.SealedBox(combined: record.value),
            let value = try? ChaChaPoly.open(box, using: sealingKey(epoch: epoch), authenticating: record.key.bytes)
        else { return nil }
        return Array(value)
    }

    func sealingKey(epoch: UInt64) -> SymmetricKey { SymmetricKey(data: derive("seal", epoch: epoch)) }

    func derive(_ label: String, epoch: UInt64) -> [UInt8] {
        var info = Array(label.utf8)
        withUnsafeBytes(of: epoch.bigEndian) { info += $0 }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: bytes), salt: Array("privatus presence v1".utf8), info: info,
            outputByteCount: 32)
        return key.withUnsafeBytes { Array($0) }
    }
}
