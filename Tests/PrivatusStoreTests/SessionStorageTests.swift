import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusCrypto
import PrivatusStore
import PrivatusTesting
import Testing

@Suite struct SessionStorageTests {
    /// A real session pair, started through the product's path.
    static func pair() throws -> (alice: RatchetSession, bob: RatchetSession, bobKeys: IdentityKeys) {
        let now: UInt64 = 1_800_000_000
        var randomness = SystemRatchetKeys()
        let aliceKeys = IdentityKeys()
        let bobKeys = IdentityKeys()
        let prekeys = try PrekeyStore(identity: bobKeys.identity, now: now)
        let (alice, first) = try SessionStart.initiate(
            keys: aliceKeys, bundle: prekeys.bundle(keys: bobKeys, withOneTimePrekey: false), firstPlaintext: [1],
            now: now,
            ratchetKeys: &randomness)
        let accepted = try prekeys.acceptingInitialMessage(first, keys: bobKeys, now: now, ratchetKeys: &randomness)
        return (alice, accepted.session, bobKeys)
    }

    @Test func sessionsRoundTripSealedAndKeepTheirOrder() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let (alice, _, bobKeys) = try Self.pair()
        let bob = bobKeys.identity.publicKey.peerID
        #expect(throws: StoreError.notFound) { try store.saveSessions(PeerSessions([alice]), with: bob) }
        try store.addContact(
            Contact(
                peerID: bob, identityKey: Array(bobKeys.identity.publicKey.rawRepresentation), name: "Bob",
                state: .contact))
        #expect(try store.sessions(with: bob).sessions.isEmpty)
        let (other, _, _) = try Self.pair()
        try store.saveSessions(PeerSessions([alice, other]), with: bob)
        let loaded = try store.sessions(with: bob)
        #expect(loaded.sessions.map(\.serialized) == [alice.serialized, other.serialized])
        try store.saveSessions(PeerSessions([other]), with: bob)
        #expect(try store.sessions(with: bob).sessions.map(\.serialized) == [other.serialized])
    }

    @Test func sessionsReplacedWithMoreFewerOrNoneReadBackTheSameFromTheFile() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let key = SymmetricKey(size: .bits256)
        let store = try Store(path: path, databaseKey: key)
        let (a, _, bobKeys) = try Self.pair()
        let (b, _, _) = try Self.pair()
        let (c, _, _) = try Self.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.addContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        for sessions in [[a, b], [b], [b, a, c], [c, c], [], [c]] {
            try store.saveSessions(PeerSessions(sessions), with: bob)
            #expect(try store.sessions(with: bob).sessions.map(\.serialized) == sessions.map(\.serialized))
            // Another store on the same file has nothing cached: what it reads is what was written.
            let fresh = try Store(path: path, databaseKey: key)
            #expect(try fresh.sessions(with: bob).sessions.map(\.serialized) == sessions.map(\.serialized))
        }
        #expect(try store.check().isEmpty)
    }

    @Test func aSessionsNextStateKeepsItsRow() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let store = try Store(path: path, databaseKey: SymmetricKey(size: .bits256))
        let (a, _, bobKeys) = try Self.pair()
        let (b, _, _) = try Self.pair()
        let (c, _, _) = try Self.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.addContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        func rows() throws -> [(id: Data, ordinal: Int)] {
            try DatabaseQueue(path: path).read { db in
                try Row.fetchAll(db, sql: "SELECT id, ordinal FROM sessions ORDER BY ordinal").map {
                    ($0["id"], $0["ordinal"])
                }
            }
        }
        try store.saveSessions(PeerSessions([a, b]), with: bob)
        let first = try rows()
        #expect(first.map(\.ordinal) == [0, 1])
        try store.saveSessions(PeerSessions([c, a]), with: bob)
        #expect(try rows().map(\.id) == first.map(\.id), "the same rows, sealed again")
        try store.saveSessions(PeerSessions([b]), with: bob)
        #expect(try rows().map(\.id) == [first[0].id])
        try store.saveSessions(PeerSessions([b, c, a]), with: bob)
        let grown = try rows()
        #expect(grown.map(\.ordinal) == [0, 1, 2])
        #expect(grown[0].id == first[0].id)
        #expect(try store.sessions(with: bob).sessions.map(\.serialized) == [b, c, a].map(\.serialized))
    }

    @Test func everyWriteOfSessionsIsSeenByTheNextRead() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let (a, _, bobKeys) = try Self.pair()
        let (b, _, _) = try Self.pair()
        let (c, _, _) = try Self.pair()
        let bob = bobKeys.identity.publicKey.peerID
        let me = PeerID(identityPublicKey: [1])
        try store.addContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        // Each read below comes after a read of the previous state (kept by the store).
        func sessions() throws -> [[UInt8]] { try store.sessions(with: bob).sessions.map(\.serialized) }
        try store.saveSessions(PeerSessions([a]), with: bob)
        #expect(try sessions() == [a.serialized])
        _ = try store.commitOutgoing(
            NewMessage(peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 1, body: "one"),
            ciphertext: [1], sessions: PeerSessions([b]), nextTry: 0)
        #expect(try sessions() == [b.serialized], "after a send")
        let waiting = try store.queueAwaitingSession(
            NewMessage(peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 2, body: "two"), nextTry: 0)
        #expect(try sessions() == [b.serialized])
        try store.commitSealed(messageID: waiting.id, peer: bob, ciphertext: [2], sessions: PeerSessions([c]))
        #expect(try sessions() == [c.serialized], "after sealing a waiting message")
        _ = try store.commitIncoming(
            NewMessage(
                peer: bob, direction: .received, state: .delivered, sender: bob, sentAt: 3, body: "three",
                id: Array(repeating: 7, count: 16), number: 1),
            contact: nil, sessions: PeerSessions([a, c]), prekeys: nil)
        #expect(try sessions() == [a.serialized, c.serialized], "after a receive")
        try store.restartSessions(with: bob, now: 4)
        #expect(try sessions().isEmpty, "after a restart")
        try store.saveSessions(PeerSessions([a]), with: bob)
        #expect(try sessions() == [a.serialized])
        try store.removeContact(bob)
        #expect(throws: StoreError.notFound) { try store.sessions(with: bob) }
        try store.addContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        #expect(try sessions().isEmpty, "a contact added again has none")
    }

    /// What a read returns after a write that did not commit, or committed without the
    /// sessions, is what the file holds: never the sessions that were not written.
    @Test func aWriteThatDidNotStoreItsSessionsLeavesTheStoredOnes() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let key = SymmetricKey(size: .bits256)
        let store = try Store(path: path, databaseKey: key)
        let (a, _, bobKeys) = try Self.pair()
        let (b, _, _) = try Self.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.addContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        func sessions() throws -> [[UInt8]] { try store.sessions(with: bob).sessions.map(\.serialized) }
        try store.saveSessions(PeerSessions([a]), with: bob)
        #expect(try sessions() == [a.serialized])
        // Sealing a message that is not waiting: refused, nothing written.
        #expect(throws: StoreError.notFound) {
            try store.commitSealed(
                messageID: Array(repeating: 9, count: 16), peer: bob, ciphertext: [2], sessions: PeerSessions([b]))
        }
        #expect(try sessions() == [a.serialized], "after a refused seal")
        // A batch whose message is already stored: committed as a resend, its sessions not written.
        let received = NewMessage(
            peer: bob, direction: .received, state: .delivered, sender: bob, sentAt: 3, body: "three",
            id: Array(repeating: 7, count: 16), number: 1)
        _ = try store.commitIncoming(received, contact: nil, sessions: PeerSessions([a]), prekeys: nil)
        let again = try store.commitIncoming([received], contact: nil, sessions: PeerSessions([b]), prekeys: nil)
        #expect(again.isResend)
        #expect(try sessions() == [a.serialized], "after a resend")
        let fresh = try Store(path: path, databaseKey: key)
        #expect(try fresh.sessions(with: bob).sessions.map(\.serialized) == [a.serialized])
    }

    @Test func sendingCommitsSessionsMessageAndCiphertextTogether() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        var (alice, bob, bobKeys) = try Self.pair()
        let bobID = bobKeys.identity.publicKey.peerID
        let me = PeerID(identityPublicKey: [1])
        try store.addContact(
            Contact(
                peerID: bobID, identityKey: Array(bobKeys.identity.publicKey.rawRepresentation), name: "Bob",
                state: .contact))
        let (advanced, message) = try PeerSessions([alice]).encrypting(Array("hello bob".utf8))
        let stored = try store.commitOutgoing(
            NewMessage(peer: bobID, direction: .sent, state: .queued, sender: me, sentAt: 5, body: "hello bob"),
            ciphertext: message.encoded, sessions: advanced, nextTry: 10)
        #expect(stored.state == .queued)
        // The committed state is the advanced one, and the ciphertext waits in the outbox as is.
        alice = try #require(try store.sessions(with: bobID).sessions.first)
        #expect(alice.serialized == advanced.sessions[0].serialized)
        #expect(try store.outbox(dueBy: 9).isEmpty)
        let due = try store.outbox(dueBy: 10)
        #expect(due.map(\.messageID) == [stored.id])
        var randomness = SystemRatchetKeys()
        let resent = try RatchetMessage(decoding: due[0].ciphertext)
        #expect(try bob.decrypting(resent, now: 1_800_000_000, keys: &randomness).plaintext == Array("hello bob".utf8))
        bob = try bob.decrypting(resent, now: 1_800_000_000, keys: &randomness).session
        #expect(try store.latestMessages(with: bobID).map(\.body) == ["hello bob"])
    }

    @Test func failedCommitLeavesNothingBehind() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let (alice, _, _) = try Self.pair()
        let stranger = PeerID(identityPublicKey: [9])
        #expect(throws: StoreError.notFound) {
            try store.commitOutgoing(
                NewMessage(peer: stranger, direction: .sent, state: .queued, sender: stranger, sentAt: 1, body: "x"),
                ciphertext: [1], sessions: PeerSessions([alice]), nextTry: 0)
        }
        #expect(try store.latestMessages(with: stranger).isEmpty)
        #expect(try store.outbox(dueBy: .max).isEmpty)
    }

    @Test func settingsAreSealedAndReplaceable() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        #expect(try store.setting("discoverable") == nil)
        try store.setSetting("discoverable", to: [1])
        try store.setSetting("discoverable", to: [0])
        #expect(try store.setting("discoverable") == [0])
    }
}

@Suite struct PrekeyStorageTests {
    @Test func prekeyStoreRoundTripsSealed() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        #expect(try store.prekeys() == nil)
        let keys = IdentityKeys()
        let prekeys = try PrekeyStore(identity: keys.identity, now: 1)
        try store.savePrekeys(prekeys)
        try store.savePrekeys(prekeys)  // replaced, not duplicated
        #expect(try store.prekeys()?.serialized == prekeys.serialized)
    }
}

@Suite struct SkippedKeyBudgetTests {
    /// Sessions with `peer`'s contact holding `skipped` keys: Alice sends `skipped + 1`
    /// messages and Bob reads only the last.
    static func sessionsHolding(_ skipped: Int) throws -> PeerSessions {
        let pair = try SessionStorageTests.pair()
        var alice = pair.alice
        var randomness = SystemRatchetKeys()
        var last: RatchetMessage?
        for _ in 0...skipped { (alice, last) = try alice.encrypting([7]) }
        let (held, _) = try PeerSessions([pair.bob]).decrypting(last!, now: 1_800_000_000, keys: &randomness)
        return held
    }

    static func contact(_ name: String, in store: Store) throws -> PeerID {
        let key = IdentityKey().publicKey
        try store.addContact(
            Contact(peerID: key.peerID, identityKey: Array(key.rawRepresentation), name: name, state: .contact))
        return key.peerID
    }

    @Test func theBudgetCountsEveryOtherContactsStoredSkippedKeys() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let databaseKey = SymmetricKey(size: .bits256)
        let (carol, dave): (PeerID, PeerID)
        do {
            let store = try Store(path: path, databaseKey: databaseKey)
            carol = try Self.contact("Carol", in: store)
            dave = try Self.contact("Dave", in: store)
            try store.saveSessions(Self.sessionsHolding(30), with: carol)
        }
        // A fresh open counts what is on disk.
        let store = try Store(path: path, databaseKey: databaseKey, skippedKeyBudget: 40)
        #expect(try store.skippedKeyAllowance(for: dave) == 10)
        #expect(try store.skippedKeyAllowance(for: carol) == 40)
        // Writes keep the count in step.
        try store.saveSessions(Self.sessionsHolding(5), with: dave)
        #expect(try store.skippedKeyAllowance(for: carol) == 35)
        try store.saveSessions(Self.sessionsHolding(35), with: carol)
        #expect(try store.skippedKeyAllowance(for: dave) == 5)

        // Dave's next gap of 20 keeps only what the budget allows, oldest dropped first.
        let pair = try SessionStorageTests.pair()
        var alice = pair.alice
        var randomness = SystemRatchetKeys()
        var last: RatchetMessage?
        for _ in 0...20 { (alice, last) = try alice.encrypting([7]) }
        let allowance = try store.skippedKeyAllowance(for: dave)
        let (after, plaintext) = try PeerSessions([pair.bob]).decrypting(
            last!, now: 1_800_000_000, keys: &randomness, skippedKeyAllowance: allowance)
        #expect(plaintext == [7])
        try store.saveSessions(after, with: dave)
        #expect(after.sessions.map(\.skippedKeyCount).reduce(0, +) == 5)
        #expect(try store.skippedKeyAllowance(for: carol) == 35)
    }
}
