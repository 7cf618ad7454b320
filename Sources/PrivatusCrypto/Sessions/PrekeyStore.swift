import Crypto
import Foundation
import PrivatusCore

/// The private side of a user's prekeys, as a value: rotation, retention, the one-time pool and
/// the replay cache of first messages. Time is passed in (Unix seconds).
///
/// Rules (DESIGN.md, "Sessions"): the signed prekey, the PQ prekey and the envelope key rotate
/// every 7 days, are accepted by senders for 30 days (their signed expiry), and their private
/// halves are kept 30 days after rotation. One-time prekeys are used once; the pool is
/// replenished to ``oneTimeTarget`` when it falls below ``oneTimeLowMark``.
public struct PrekeyStore: Sendable {
    public static let rotationInterval: UInt64 = 7 * 24 * 3600
    public static let retentionAfterRotation: UInt64 = 30 * 24 * 3600
    public static let oneTimeTarget = 100
    public static let oneTimeLowMark = 20

    struct Generation: Sendable {
        var createdAt: UInt64
        var retiredAt: UInt64?
        var signedPrekey: Curve25519.KeyAgreement.PrivateKey
        var signedPrekeyRecord: SignedPrekey
        var pqPrekey: MLKEM768.PrivateKey
        var pqPrekeyRecord: SignedPrekey
        var envelopeKey: XWingMLKEM768X25519.PrivateKey
        var envelopeKeyRecord: SignedPrekey
    }

    struct ReplayKey: Hashable, Sendable {
        var signedPrekeyID: UInt32
        var ephemeralKey: [UInt8]
    }

    /// Current generation last.
    var generations: [Generation]
    var oneTime: [UInt32: Curve25519.KeyAgreement.PrivateKey]
    var nextID: UInt32
    var replayCache: Set<ReplayKey>

    init(generations: [Generation], oneTime: [UInt32: Curve25519.KeyAgreement.PrivateKey], nextID: UInt32) {
        self.generations = generations
        self.oneTime = oneTime
        self.nextID = nextID
        self.replayCache = []
    }

    /// A store with a first generation and a full one-time pool.
    public init(identity: IdentityKey, now: UInt64) throws {
        generations = []
        oneTime = [:]
        nextID = 1
        replayCache = []
        try rotate(identity: identity, now: now)
        replenishOneTime()
    }

    /// Rotates when the current generation is 7 days old, forgets retired generations 30 days
    /// after their rotation (with their replay-cache entries), and refills the one-time pool.
    /// Returns whether the published bundle changed.
    @discardableResult
    public mutating func maintain(identity: IdentityKey, now: UInt64) throws -> Bool {
        var changed = false
        if let current = generations.last, now >= current.createdAt, now - current.createdAt >= Self.rotationInterval {
            try rotate(identity: identity, now: now)
            changed = true
        }
        let expired = Set(
            generations.filter { generation in
                guard let retiredAt = generation.retiredAt, now >= retiredAt else { return false }
                return now - retiredAt >= Self.retentionAfterRotation
            }.map(\.signedPrekeyRecord.id)
        )
        if !expired.isEmpty {
            generations.removeAll { expired.contains($0.signedPrekeyRecord.id) }
            replayCache = replayCache.filter { !expired.contains($0.signedPrekeyID) }
        }
        if oneTime.count < Self.oneTimeLowMark {
            replenishOneTime()
            changed = true
        }
        return changed
    }

    /// The bundle to publish; with `withOneTimePrekey`, one unused one-time prekey (handed out by
    /// the owner's node to one requester; it stays usable until a first message consumes it).
    public func bundle(keys: IdentityKeys, withOneTimePrekey: Bool) -> PrekeyBundle {
        let current = generations.last!
        let oneTimePrekey =
            withOneTimePrekey
            ? oneTime.min { $0.key < $1.key }.map {
                OneTimePrekey(id: $0.key, publicKey: Array($0.value.publicKey.rawRepresentation))
            }
            : nil
        return PrekeyBundle(
            identityKey: keys.identity.publicKey,
            identityDH: keys.publicIdentity.identityDH,
            signedPrekey: current.signedPrekeyRecord,
            pqPrekey: current.pqPrekeyRecord,
            envelopeKey: current.envelopeKeyRecord,
            oneTimePrekey: oneTimePrekey
        )
    }

    /// The number of unused one-time prekeys.
    public var oneTimeCount: Int { oneTime.count }

    /// Accepts a session's first message: finds the prekeys it names, refuses a repeated
    /// (signed prekey, ephemeral key) pair, runs PQXDH, decrypts the first ratchet message, and
    /// only then records the pair and consumes the one-time prekey. Returns the new store, the
    /// responder's session (after that first message) and the plaintext; on failure nothing
    /// changes.
    public func acceptingInitialMessage(
        _ bytes: [UInt8],
        keys: IdentityKeys,
        now: UInt64,
        ratchetKeys: inout some RatchetKeySource
    ) throws(SessionError) -> (
        store: PrekeyStore, session: RatchetSession, initiator: IdentityPublicKey, plaintext: [UInt8]
    ) {
        let (header, rest) = try InitialHeader.decode(bytes)
        let message = try RatchetMessage(decoding: rest)
        let replayKey = ReplayKey(signedPrekeyID: header.signedPrekeyID, ephemeralKey: header.ephemeralKey)
        guard !replayCache.contains(replayKey) else { throw .replayedInitialMessage }
        guard let generation = generations.first(where: { $0.signedPrekeyRecord.id == header.signedPrekeyID }),
            let pqGeneration = generations.first(where: { $0.pqPrekeyRecord.id == header.pqPrekeyID })
        else { throw .unknownPrekey }
        var oneTimePrekey: Curve25519.KeyAgreement.PrivateKey?
        if let id = header.oneTimePrekeyID {
            guard let key = oneTime[id] else { throw .unknownPrekey }
            oneTimePrekey = key
        }
        let response = try PQXDH.respond(
            as: keys,
            to: header,
            signedPrekey: generation.signedPrekey,
            pqPrekey: pqGeneration.pqPrekey,
            oneTimePrekey: oneTimePrekey
        )
        let session = RatchetSession.responder(
            sharedSecret: response.sharedSecret,
            associatedData: response.associatedData,
            signedPrekey: generation.signedPrekey
        )
        let (advanced, plaintext) = try session.decrypting(message, now: now, keys: &ratchetKeys)
        var next = self
        next.replayCache.insert(replayKey)
        if let id = header.oneTimePrekeyID { next.oneTime[id] = nil }
        return (next, advanced, response.initiator, plaintext)
    }

    // MARK: - Internals

    mutating func rotate(identity: IdentityKey, now: UInt64) throws {
        if let last = generations.indices.last { generations[last].retiredAt = now }
        let expiresAt = now + SignedPrekey.acceptedFor
        let signed = Curve25519.KeyAgreement.PrivateKey()
        let pq = try MLKEM768.PrivateKey()
        let envelope = try XWingMLKEM768X25519.PrivateKey()
        let ids = (takeID(), takeID(), takeID())
        generations.append(
            Generation(
                createdAt: now,
                retiredAt: nil,
                signedPrekey: signed,
                signedPrekeyRecord: SignedPrekey(
                    purpose: .signedPrekey,
                    id: ids.0,
                    expiresAt: expiresAt,
                    publicKey: Array(signed.publicKey.rawRepresentation),
                    identity: identity
                ),
                pqPrekey: pq,
                pqPrekeyRecord: SignedPrekey(
                    purpose: .pqPrekey,
                    id: ids.1,
                    expiresAt: expiresAt,
                    publicKey: Array(pq.publicKey.rawRepresentation),
                    identity: identity
                ),
                envelopeKey: envelope,
                envelopeKeyRecord: SignedPrekey(
                    purpose: .envelopeKey,
                    id: ids.2,
                    expiresAt: expiresAt,
                    publicKey: Array(envelope.publicKey.rawRepresentation),
                    identity: identity
                )
            )
        )
    }

    mutating func replenishOneTime() {
        while oneTime.count < Self.oneTimeTarget { oneTime[takeID()] = Curve25519.KeyAgreement.PrivateKey() }
    }

    mutating func takeID() -> UInt32 {
        defer { nextID &+= 1 }
        return nextID
    }
}
