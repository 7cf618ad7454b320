import Crypto
import Foundation
import PrivatusCore
import Testing

@testable import PrivatusCrypto

/// Counts the key pairs a ratchet takes, to show when a DH step's sending half ran.
struct CountingRatchetKeys: RatchetKeySource {
    var taken = 0
    mutating func nextKeyPair() -> Curve25519.KeyAgreement.PrivateKey {
        taken += 1
        return .init()
    }
}

@Suite struct SessionHardeningTests {
    static let now = Pair.start

    @Test func initialMessageWithANonCanonicalEphemeralKeyIsRefused() throws {
        // X25519 ignores bit 255: without this check the same message with that bit flipped
        // would derive the same secret and slip past the replay cache.
        let alice = IdentityKeys()
        let bob = IdentityKeys()
        let store = try PrekeyStore(identity: bob.identity, now: Self.now)
        var keys = SystemRatchetKeys()
        let (_, message) = try SessionStart.initiate(
            keys: alice, bundle: store.bundle(keys: bob, withOneTimePrekey: false), firstPlaintext: [1], now: Self.now,
            ratchetKeys: &keys)
        let accepted = try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        var flipped = message
        flipped[129 + 31] ^= 0x80
        #expect(throws: SessionError.malformedKey) {
            try accepted.store.acceptingInitialMessage(flipped, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
        #expect(throws: SessionError.replayedInitialMessage) {
            try accepted.store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
    }

    @Test func canonicalX25519EncodingsAreExactlyThoseBelowP() {
        var p = [UInt8](repeating: 0xff, count: 32)
        p[0] = 0xed
        p[31] = 0x7f
        var belowP = p
        belowP[0] = 0xec
        var high = [UInt8](repeating: 0, count: 32)
        high[31] = 0x80
        #expect(!isCanonicalX25519(p))
        #expect(isCanonicalX25519(belowP))
        #expect(!isCanonicalX25519(high))
        #expect(isCanonicalX25519([UInt8](repeating: 9, count: 32)))
    }

    @Test func oversizedInitialMessageIsRefusedBeforeCopying() {
        let huge = [UInt8](repeating: 1, count: InitialHeader.encodedSize + RatchetMessage.maximumSize + 1)
        #expect(throws: SessionError.malformedMessage) { try InitialHeader.decode(huge) }
    }

    @Test func forgedHeaderWithANewRatchetKeyAndAHugeNumberDerivesNothing() throws {
        var pair = try Pair()
        let (bobNext, reply) = try pair.bob.encrypting("r")
        pair.bob = bobNext
        pair.alice = try pair.alice.decrypting(reply, now: Self.now, keys: &pair.keys).session
        let fresh = Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
        var counting = CountingRatchetKeys()
        let before = pair.bob.serialized
        for (pn, n) in [
            (UInt32(0), UInt32.max), (0, RatchetSession.maximumSkip + 1), (RatchetSession.maximumSkip + 5, 0),
        ] {
            let forged = RatchetMessage(
                header: RatchetHeader(ratchetKey: fresh, previousChainLength: pn, messageNumber: n),
                ciphertext: [UInt8](repeating: 0, count: 176)
            )
            #expect(throws: SessionError.tooManySkippedMessages, "PN \(pn), N \(n)") {
                try pair.bob.decrypting(forged, now: Self.now, keys: &counting)
            }
        }
        #expect(counting.taken == 0)
        #expect(pair.bob.serialized == before)
    }

    @Test func failedMessageWithANewRatchetKeyTakesNoKeyPair() throws {
        var pair = try Pair()
        let (bobNext, reply) = try pair.bob.encrypting("r")
        _ = bobNext
        var counting = CountingRatchetKeys()
        var broken = reply.ciphertext
        broken[0] ^= 1
        #expect(throws: SessionError.decryptionFailed) {
            try pair.alice.decrypting(
                RatchetMessage(header: reply.header, ciphertext: broken), now: Self.now, keys: &counting)
        }
        #expect(counting.taken == 0)
        _ = try pair.alice.decrypting(reply, now: Self.now, keys: &counting)
        #expect(counting.taken == 1)
    }

    @Test func headerFieldsAreBoundEvenWhenTheKeyIsFoundBySkippedNumber() throws {
        var pair = try Pair()
        let (alice, skippedMessage) = try pair.alice.encrypting("skipped")
        let (alice2, later) = try alice.encrypting("later")
        pair.alice = alice2
        pair.bob = try pair.bob.decrypting(later, now: Self.now, keys: &pair.keys).session
        // Same ratchet key and N (so the skipped key is found), another PN: the AD differs.
        let altered = RatchetMessage(
            header: RatchetHeader(
                ratchetKey: skippedMessage.header.ratchetKey,
                previousChainLength: skippedMessage.header.previousChainLength + 1,
                messageNumber: skippedMessage.header.messageNumber
            ),
            ciphertext: skippedMessage.ciphertext
        )
        #expect(throws: SessionError.decryptionFailed) {
            try pair.bob.decrypting(altered, now: Self.now, keys: &pair.keys)
        }
        #expect(
            try pair.bob.decrypting(skippedMessage, now: Self.now, keys: &pair.keys).plaintext == Array("skipped".utf8))
    }

    @Test func skippedKeysExpireWithoutAnyMessageArriving() throws {
        var pair = try Pair()
        let (alice, _) = try pair.alice.encrypting("lost")
        let (alice2, later) = try alice.encrypting("later")
        pair.alice = alice2
        pair.bob = try pair.bob.decrypting(later, now: Self.now, keys: &pair.keys).session
        #expect(pair.bob.skippedKeyCount == 1)
        #expect(
            pair.bob.expiringSkippedKeys(now: Self.now + RatchetSession.skippedKeyLifetime - 1).skippedKeyCount == 1)
        #expect(pair.bob.expiringSkippedKeys(now: Self.now + RatchetSession.skippedKeyLifetime).skippedKeyCount == 0)
        let sessions = PeerSessions([pair.bob]).expiringSkippedKeys(now: Self.now + RatchetSession.skippedKeyLifetime)
        #expect(sessions.sessions[0].skippedKeyCount == 0)
        // A clock set back does not expire anything.
        #expect(pair.bob.expiringSkippedKeys(now: 0).skippedKeyCount == 1)
    }

    @Test func skippedKeysRespectTheAllowanceOfTheirHolder() throws {
        var pair = try Pair()
        var alice = pair.alice
        var last: RatchetMessage?
        for _ in 0..<50 {
            let (next, message) = try alice.encrypting("x")
            alice = next
            last = message
        }
        let capped = try pair.bob.decrypting(last!, now: Self.now, keys: &pair.keys, skippedKeyAllowance: 10)
        #expect(capped.session.skippedKeyCount == 10)
        // Across a peer's sessions: another session holding 45 keys leaves room for 5.
        var other = try Pair()
        var otherAlice = other.alice
        var otherLast: RatchetMessage?
        for _ in 0..<46 {
            let (next, message) = try otherAlice.encrypting("y")
            otherAlice = next
            otherLast = message
        }
        let otherBob = try other.bob.decrypting(otherLast!, now: Self.now, keys: &other.keys).session
        #expect(otherBob.skippedKeyCount == 45)
        let both = PeerSessions([otherBob, pair.bob])
        let after = try both.decrypting(last!, now: Self.now, keys: &pair.keys, skippedKeyAllowance: 50)
        #expect(after.sessions.sessions.map(\.skippedKeyCount).reduce(0, +) == 50)
    }

    @Test func replayCacheEntriesGoWithTheirGeneration() throws {
        let alice = IdentityKeys()
        let bob = IdentityKeys()
        var store = try PrekeyStore(identity: bob.identity, now: Self.now)
        var keys = SystemRatchetKeys()
        let (_, message) = try SessionStart.initiate(
            keys: alice, bundle: store.bundle(keys: bob, withOneTimePrekey: false), firstPlaintext: [1], now: Self.now,
            ratchetKeys: &keys)
        store = try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys).store
        #expect(store.replayCache.count == 1)
        let firstID = store.generations[0].signedPrekeyRecord.id
        let rotation = Self.now + PrekeyStore.rotationInterval
        try store.maintain(identity: bob.identity, now: rotation)
        try store.maintain(identity: bob.identity, now: rotation + PrekeyStore.retentionAfterRotation - 1)
        #expect(store.generations.contains { $0.signedPrekeyRecord.id == firstID }, "kept until 30 days after rotation")
        #expect(throws: SessionError.replayedInitialMessage) {
            try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
        try store.maintain(identity: bob.identity, now: rotation + PrekeyStore.retentionAfterRotation)
        #expect(!store.generations.contains { $0.signedPrekeyRecord.id == firstID })
        #expect(store.replayCache.isEmpty)
        // With the private half gone the message cannot be accepted at all.
        #expect(throws: SessionError.unknownPrekey) {
            try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys)
        }
    }

    @Test func exhaustedSendingChainAsksForANewSession() throws {
        var pair = try Pair()
        pair.alice.sending?.count = UInt32.max
        #expect(throws: SessionError.sessionExhausted) { try pair.alice.encrypting("x") }
    }
}

@Suite struct PrekeyStoreSerializationTests {
    @Test func serializedStoreKeepsKeysPoolAndReplayCache() throws {
        let now: UInt64 = 1_800_000_000
        let bob = IdentityKeys()
        var store = try PrekeyStore(identity: bob.identity, now: now)
        try store.maintain(identity: bob.identity, now: now + PrekeyStore.rotationInterval)  // two generations
        var randomness = SystemRatchetKeys()
        let (_, first) = try SessionStart.initiate(
            keys: IdentityKeys(), bundle: store.bundle(keys: bob, withOneTimePrekey: true), firstPlaintext: [1],
            now: now + PrekeyStore.rotationInterval, ratchetKeys: &randomness)
        store = try store.acceptingInitialMessage(
            first, keys: bob, now: now + PrekeyStore.rotationInterval, ratchetKeys: &randomness
        ).store

        let restored = try PrekeyStore(serialized: store.serialized)
        #expect(restored.serialized == store.serialized)
        #expect(restored.bundle(keys: bob, withOneTimePrekey: true) == store.bundle(keys: bob, withOneTimePrekey: true))
        #expect(restored.oneTimeCount == store.oneTimeCount)
        #expect(throws: SessionError.replayedInitialMessage) {
            try restored.acceptingInitialMessage(
                first, keys: bob, now: now + PrekeyStore.rotationInterval, ratchetKeys: &randomness)
        }
        // A sender using the restored bundle reaches the restored store.
        let (_, second) = try SessionStart.initiate(
            keys: IdentityKeys(), bundle: restored.bundle(keys: bob, withOneTimePrekey: false), firstPlaintext: [2],
            now: now + PrekeyStore.rotationInterval, ratchetKeys: &randomness)
        #expect(
            try restored.acceptingInitialMessage(
                second, keys: bob, now: now + PrekeyStore.rotationInterval, ratchetKeys: &randomness
            ).plaintext == [2])
    }

    @Test func damagedSerializedStoreIsRefused() throws {
        let store = try PrekeyStore(identity: IdentityKey(), now: 1)
        let bytes = store.serialized
        #expect(throws: SessionError.malformedState) { try PrekeyStore(serialized: Array(bytes.dropLast())) }
        #expect(throws: SessionError.malformedState) { try PrekeyStore(serialized: bytes + [0]) }
        var version = bytes
        version[0] = 2
        #expect(throws: SessionError.malformedState) { try PrekeyStore(serialized: version) }
    }
}

@Suite struct ReplayCacheBoundTests {
    static let now: UInt64 = 1_800_000_000

    /// Valid first messages from a flood of fresh initiators to `store`'s current bundle.
    static func firstMessages(count: Int, to store: PrekeyStore, of bob: IdentityKeys) throws -> [[UInt8]] {
        var keys = SystemRatchetKeys()
        return try (0..<count).map { _ in
            try SessionStart.initiate(
                keys: IdentityKeys(), bundle: store.bundle(keys: bob, withOneTimePrekey: false), firstPlaintext: [1],
                now: now, ratchetKeys: &keys
            ).message
        }
    }

    @Test func aFullCacheRefusesNewFirstMessagesAndMaintenanceRotatesEarly() throws {
        let bob = IdentityKeys()
        var store = try PrekeyStore(identity: bob.identity, now: Self.now)
        store.replayLimit = 4
        var keys = SystemRatchetKeys()
        let flood = try Self.firstMessages(count: 5, to: store, of: bob)
        for message in flood.prefix(4) {
            store = try store.acceptingInitialMessage(message, keys: bob, now: Self.now, ratchetKeys: &keys).store
        }
        #expect(store.replayCacheEntries == 4)
        // The fifth is refused (not evicting an entry, which would reopen a replay) …
        #expect(throws: SessionError.replayCacheFull) {
            try store.acceptingInitialMessage(flood[4], keys: bob, now: Self.now, ratchetKeys: &keys)
        }
        // … and a replay of an accepted one is still a replay.
        #expect(throws: SessionError.replayedInitialMessage) {
            try store.acceptingInitialMessage(flood[0], keys: bob, now: Self.now, ratchetKeys: &keys)
        }
        // Maintenance well before the 7 days rotates because the cache is past three quarters.
        let oldID = store.bundle(keys: bob, withOneTimePrekey: false).signedPrekey.id
        #expect(try store.maintain(identity: bob.identity, now: Self.now + 60))
        let fresh = store.bundle(keys: bob, withOneTimePrekey: false)
        #expect(fresh.signedPrekey.id != oldID)
        #expect(store.replayCacheEntries == 0)
        #expect(store.replayCacheTotal == 4, "the retired prekey keeps its entries while it is held")
        let retry = try Self.firstMessages(count: 1, to: store, of: bob)[0]
        let accepted = try store.acceptingInitialMessage(retry, keys: bob, now: Self.now, ratchetKeys: &keys)
        #expect(accepted.plaintext == [1])
    }

    @Test func aFloodOfEarlyRotationsKeepsAtMostTheGenerationCap() throws {
        let bob = IdentityKeys()
        var store = try PrekeyStore(identity: bob.identity, now: Self.now)
        store.replayLimit = 4
        var keys = SystemRatchetKeys()
        var time = Self.now
        for _ in 0..<(PrekeyStore.maximumGenerations + 3) {
            for message in try Self.firstMessages(count: 3, to: store, of: bob) {
                store = try store.acceptingInitialMessage(message, keys: bob, now: time, ratchetKeys: &keys).store
            }
            time += 60
            #expect(try store.maintain(identity: bob.identity, now: time))
            #expect(store.generations.count <= PrekeyStore.maximumGenerations)
        }
        #expect(store.generations.count == PrekeyStore.maximumGenerations)
        #expect(store.replayCacheTotal == 3 * (PrekeyStore.maximumGenerations - 1))
        // The state survives its serialization with the counts rebuilt.
        let reloaded = try PrekeyStore(serialized: store.serialized)
        #expect(reloaded.replayCounts == store.replayCounts)
    }
}
