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
    /// First messages accepted per signed prekey before it refuses more (its replay cache is
    /// full). Anyone holding the bundle can add entries, so the cache is bounded: ``maintain``
    /// rotates early once the current prekey's cache passes ``earlyRotationMark``, and senders
    /// refused with ``SessionError/replayCacheFull`` fetch the new bundle.
    public static let replayEntriesPerGeneration = 1 << 16
    /// The fill of the current prekey's replay cache at which ``maintain`` rotates early.
    public static var earlyRotationMark: Int { replayEntriesPerGeneration / 4 * 3 }
    /// Generations kept at most (the current one included). Regular rotation keeps about
    /// five within the 30-day retention; early rotations forced by a flood drop the oldest
    /// retired generation sooner, so memory stays bounded (≈ 8 × 2^16 entries).
    public static let maximumGenerations = 8

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
    /// Changed only through ``insertReplayEntry(_:)`` and ``setReplayCache(_:)``, which keep
    /// ``replayCounts`` in step.
    private(set) var replayCache: Set<ReplayKey>
    /// Entries per signed prekey id.
    private(set) var replayCounts: [UInt32: Int] = [:]
    /// The per-generation cap in force (a test lowers it).
    var replayLimit = Self.replayEntriesPerGeneration

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
        if let current = generations.last,
            (now >= current.createdAt && now - current.createdAt >= Self.rotationInterval)
                || replayCacheEntries >= replayLimit / 4 * 3  // early: see earlyRotationMark
        {
            try rotate(identity: identity, now: now)
            changed = true
        }
        var expired = Set(
            generations.filter { generation in
                guard let retiredAt = generation.retiredAt, now >= retiredAt else { return false }
                return now - retiredAt >= Self.retentionAfterRotation
            }.map(\.signedPrekeyRecord.id)
        )
        // Past the generation cap, the oldest retired generations go early.
        var kept = generations.count - expired.count
        for generation in generations.dropLast() where kept > Self.maximumGenerations {
            if expired.insert(generation.signedPrekeyRecord.id).inserted { kept -= 1 }
        }
        if !expired.isEmpty {
            generations.removeAll { expired.contains($0.signedPrekeyRecord.id) }
            setReplayCache(replayCache.filter { !expired.contains($0.signedPrekeyID) })
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
        bundle(keys: keys, oneTimePrekeyNotIn: withOneTimePrekey ? [] : nil)
    }

    /// The bundle to publish with the lowest unused one-time prekey whose id is not in
    /// `handedOut` (none when all are, or when `handedOut` is nil): a node gives each requester a
    /// key no other requester got.
    public func bundle(keys: IdentityKeys, oneTimePrekeyNotIn handedOut: Set<UInt32>?) -> PrekeyBundle {
        let current = generations.last!
        let oneTimePrekey = handedOut.flatMap { handedOut in
            oneTime.filter { !handedOut.contains($0.key) }.min { $0.key < $1.key }.map {
                OneTimePrekey(id: $0.key, publicKey: Array($0.value.publicKey.rawRepresentation))
            }
        }
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

    /// First messages recorded for the current signed prekey: the node exports it as a gauge and
    /// alerts when it passes ``earlyRotationMark`` between two maintenance runs (a flood).
    public var replayCacheEntries: Int {
        generations.last.map { replayCounts[$0.signedPrekeyRecord.id, default: 0] } ?? 0
    }

    /// Replay-cache entries over all generations held.
    public var replayCacheTotal: Int { replayCache.count }

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
        guard replayCounts[header.signedPrekeyID, default: 0] < replayLimit else { throw .replayCacheFull }
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
        next.insertReplayEntry(replayKey)
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

    mutating func insertReplayEntry(_ key: ReplayKey) {
        if replayCache.insert(key).inserted { replayCounts[key.signedPrekeyID, default: 0] += 1 }
    }

    mutating func setReplayCache(_ cache: Set<ReplayKey>) {
        replayCache = cache
        replayCounts = [:]
        for entry in cache { replayCounts[entry.signedPrekeyID, default: 0] += 1 }
    }

    mutating func replenishOneTime() {
        while oneTime.count < Self.oneTimeTarget { oneTime[takeID()] = Curve25519.KeyAgreement.PrivateKey() }
    }

    mutating func takeID() -> UInt32 {
        defer { nextID &+= 1 }
        return nextID
    }
}
