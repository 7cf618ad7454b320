import Crypto
import Foundation
import PrivatusCore

extension PrekeyStore {
    /// The version of ``serialized``.
    public static let stateVersion: UInt8 = 1
    /// The largest serialized store accepted, checked before parsing (generations, a one-time
    /// pool and up to 2^20 replay-cache entries, ≈ 38 MiB).
    public static let maximumSerializedSize = 64 * 1024 + 65536 * 36 + (1 << 20) * 36

    /// The store as bytes, for sealed storage (docs/PROTOCOL.md, "Prekey store"). Public keys are
    /// not stored: they are derived from the private keys again on loading.
    ///
    /// ```
    /// version u8 (1) ‖ next id u32 ‖ generations u8
    /// ‖ per generation: created u64 ‖ retired flag u8 ‖ retired at u64
    ///   ‖ signed prekey private (32) ‖ id u32 ‖ expires u64 ‖ signature (64)
    ///   ‖ ML-KEM seed (64) ‖ id u32 ‖ expires u64 ‖ signature (64)
    ///   ‖ X-Wing seed (32) ‖ id u32 ‖ expires u64 ‖ signature (64)
    /// ‖ one-time count u16 ‖ per key: id u32 ‖ private (32)
    /// ‖ replay entries u32 ‖ per entry: signed prekey id u32 ‖ ephemeral key (32)
    /// ```
    public var serialized: [UInt8] {
        var out: [UInt8] = [Self.stateVersion]
        out.appendBigEndian(nextID)
        out.append(UInt8(generations.count))
        for generation in generations {
            out.appendBigEndian(generation.createdAt)
            out.append(generation.retiredAt == nil ? 0 : 1)
            out.appendBigEndian(generation.retiredAt ?? 0)
            func record(_ record: SignedPrekey) {
                out.appendBigEndian(record.id)
                out.appendBigEndian(record.expiresAt)
                out += record.signature
            }
            out += Array(generation.signedPrekey.rawRepresentation)
            record(generation.signedPrekeyRecord)
            out += Array(generation.pqPrekey.seedRepresentation)
            record(generation.pqPrekeyRecord)
            out += Array(generation.envelopeKey.seedRepresentation)
            record(generation.envelopeKeyRecord)
        }
        out.appendBigEndian(UInt16(oneTime.count))
        for (id, key) in oneTime.sorted(by: { $0.key < $1.key }) {
            out.appendBigEndian(id)
            out += Array(key.rawRepresentation)
        }
        out.appendBigEndian(UInt32(replayCache.count))
        let entries = replayCache.sorted { lhs, rhs in
            lhs.signedPrekeyID != rhs.signedPrekeyID
                ? lhs.signedPrekeyID < rhs.signedPrekeyID : lhs.ephemeralKey.lexicographicallyPrecedes(rhs.ephemeralKey)
        }
        for entry in entries {
            out.appendBigEndian(entry.signedPrekeyID)
            out += entry.ephemeralKey
        }
        return out
    }

    /// Restores a store from ``serialized``.
    /// - Throws: ``SessionError/malformedState`` for damaged or unknown data.
    public init(serialized bytes: [UInt8]) throws(SessionError) {
        guard bytes.count <= Self.maximumSerializedSize else { throw .malformedState }
        var reader = ByteReader(bytes)
        guard reader.readUInt8() == Self.stateVersion, let nextID = reader.readUInt32(), let count = reader.readUInt8(),
            count > 0
        else { throw .malformedState }
        func record(_ purpose: SignaturePurpose, _ publicKey: [UInt8]) -> SignedPrekey? {
            guard let id = reader.readUInt32(), let expires = reader.readUInt64(), let signature = reader.read(64)
            else { return nil }
            return SignedPrekey(
                purpose: purpose, id: id, expiresAt: expires, publicKey: publicKey, signature: signature)
        }
        var generations: [Generation] = []
        for _ in 0..<count {
            guard let created = reader.readUInt64(), let retiredFlag = reader.readUInt8(), retiredFlag <= 1,
                let retiredAt = reader.readUInt64(), let signedRaw = reader.read(32),
                let signed = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: signedRaw),
                let signedRecord = record(.signedPrekey, Array(signed.publicKey.rawRepresentation)),
                let pqSeed = reader.read(64),
                let pq = try? MLKEM768.PrivateKey(seedRepresentation: pqSeed, publicKey: nil),
                let pqRecord = record(.pqPrekey, Array(pq.publicKey.rawRepresentation)),
                let envelopeSeed = reader.read(32),
                let envelope = try? XWingMLKEM768X25519.PrivateKey(seedRepresentation: envelopeSeed, publicKey: nil),
                let envelopeRecord = record(.envelopeKey, Array(envelope.publicKey.rawRepresentation))
            else { throw .malformedState }
            generations.append(
                Generation(
                    createdAt: created, retiredAt: retiredFlag == 1 ? retiredAt : nil, signedPrekey: signed,
                    signedPrekeyRecord: signedRecord, pqPrekey: pq, pqPrekeyRecord: pqRecord, envelopeKey: envelope,
                    envelopeKeyRecord: envelopeRecord))
        }
        guard let oneTimeCount = reader.readUInt16() else { throw .malformedState }
        var oneTime: [UInt32: Curve25519.KeyAgreement.PrivateKey] = [:]
        for _ in 0..<oneTimeCount {
            guard let id = reader.readUInt32(), let raw = reader.read(32),
                let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
            else { throw .malformedState }
            oneTime[id] = key
        }
        guard let replayCount = reader.readUInt32(), Int(replayCount) <= reader.remaining / 36 else {
            throw .malformedState
        }
        var replay = Set<ReplayKey>()
        for _ in 0..<replayCount {
            guard let id = reader.readUInt32(), let ephemeral = reader.read(32) else { throw .malformedState }
            replay.insert(ReplayKey(signedPrekeyID: id, ephemeralKey: ephemeral))
        }
        guard reader.remaining == 0 else { throw .malformedState }
        self.init(generations: generations, oneTime: oneTime, nextID: nextID)
        setReplayCache(replay)
    }
}
