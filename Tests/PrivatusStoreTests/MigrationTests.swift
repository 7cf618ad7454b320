import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusStore
import PrivatusTesting
import Testing

/// Every schema version leaves a fixture database in `Tests/Fixtures/` (written by the test below
/// with `PRIVATUS_WRITE_FIXTURES=1`); each later migration is tested by opening the previous
/// version's fixture, which must migrate and still read back what it held.
@Suite(.serialized) struct MigrationTests {
    static let fixtureKey = SymmetricKey(data: [UInt8](repeating: 0x42, count: 32))
    static let peer = PeerID(identityPublicKey: [UInt8](repeating: 0x24, count: 32))
    static let peerKey = [UInt8](repeating: 0x24, count: 32)
    static var fixtures: URL { TestVectors.directory.deletingLastPathComponent().appendingPathComponent("Fixtures") }

    static func fillFixture(_ store: Store) throws {
        try store.addContact(Contact(peerID: peer, identityKey: peerKey, name: "Fixture Friend", state: .contact))
        try store.append(
            (0..<3).map { index in
                NewMessage(
                    peer: peer, direction: index % 2 == 0 ? .sent : .received, state: .delivered, sender: peer,
                    sentAt: 1_800_000_000_000 + UInt64(index), body: "fixture message \(index)")
            })
        // From v4 on: a message waiting in the outbox with its ciphertext.
        try store.commitOutgoing(
            [
                (
                    NewMessage(
                        peer: peer, direction: .sent, state: .queued, sender: peer, sentAt: 1_800_000_000_003,
                        body: "fixture message 3", number: 1),
                    outboxCiphertext
                )
            ], sessions: [:], nextTry: 1_800_000_000_003, deadline: 1_800_000_100_000)
    }

    static let outboxCiphertext: [UInt8] = Array("the committed ratchet message".utf8)

    @Test(.enabled(if: ProcessInfo.processInfo.environment["PRIVATUS_WRITE_FIXTURES"] == "1"))
    func writeFixtureOfTheCurrentVersion() throws {
        let version = try #require(try freshMigrations().last)
        let path = Self.fixtures.appendingPathComponent("store-\(version).sqlite").path
        try? FileManager.default.removeItem(atPath: path)
        let store = try Store(path: path, databaseKey: Self.fixtureKey)
        try Self.fillFixture(store)
        try store.checkpoint()
    }

    /// The migrations a new database gets: all of them.
    func freshMigrations() throws -> [String] {
        let scratch = try TemporaryDirectory("privatus-migration")
        defer { scratch.remove() }
        return try Store(path: scratch.child("db.sqlite"), databaseKey: Self.fixtureKey).appliedMigrations()
    }

    @Test(arguments: ["v1", "v2", "v3", "v4", "v5", "v6"])
    func anOlderFixtureOpensMigratesAndReadsBack(_ version: String) throws {
        let scratch = try TemporaryDirectory("privatus-migration")
        defer { scratch.remove() }
        let copy = scratch.child("privatus.sqlite")
        try FileManager.default.copyItem(
            atPath: Self.fixtures.appendingPathComponent("store-\(version).sqlite").path, toPath: copy)
        let store = try Store(path: copy, databaseKey: Self.fixtureKey)
        #expect(try store.appliedMigrations() == (try freshMigrations()), "migrated to the current version")
        #expect(try store.contact(Self.peer)?.name == "Fixture Friend")
        // From v4 on, the fixture also holds a message waiting in the outbox.
        let waits = version >= "v4"
        #expect(
            try store.latestMessages(with: Self.peer).map(\.body)
                == ["fixture message 0", "fixture message 1", "fixture message 2"]
                + (waits ? ["fixture message 3"] : []))
        #expect(try store.search("fixture").count == (waits ? 4 : 3))
        #expect(try store.check().isEmpty)
        // v3: the old conversation is numbered from 1 on.
        #expect(try store.lastSentNumber(to: Self.peer) == (waits ? 1 : 0))
        #expect(try store.gap(with: Self.peer) == nil)
        // v5: the outbox keyed by its message; what waited still opens, is due and can leave.
        let waiting = try store.outbox(for: Self.peer, dueBy: .max)
        #expect(waiting.map(\.ciphertext) == (waits ? [Self.outboxCiphertext] : []))
        #expect(waiting.map(\.number) == (waits ? [1] : []))
        #expect(try store.outboxCount() == (waits ? 1 : 0))
        if let entry = waiting.first {
            #expect(try store.failOverdue(now: 1_800_000_099_999).isEmpty, "its deadline came along")
            #expect(try store.failOverdue(now: 1_800_000_100_000).map(\.id) == [entry.messageID])
            _ = try store.retry(messageID: entry.messageID, now: 1_800_000_200_000, deadline: 1_800_000_300_000)
            #expect(
                try store.applyReceipt([entry.messageID], state: .delivered, from: Self.peer).map(\.id) == [
                    entry.messageID
                ])
            #expect(try store.outboxCount() == 0)
        }
        // v4: the unused index is gone.
        let indexes = try DatabaseQueue(path: copy).read { db in try db.indexes(on: "messages").map(\.name) }
        #expect(!indexes.contains("messages_by_state"))
        #expect(indexes.contains { $0.hasPrefix("sqlite_autoindex_messages") }, "the unique indexes stay")
        // v5: no index of the outbox's random ids; its key is the message's. v6: one index, by
        // next try and deadline.
        let outboxIndexes = try DatabaseQueue(path: copy).read { db in try db.indexes(on: "outbox") }
        #expect(outboxIndexes.map(\.name) == ["outbox_by_next_try_deadline"])
        #expect(outboxIndexes.first?.columns == ["next_try", "deadline"])
        let key = try DatabaseQueue(path: copy).read { db in try db.primaryKey("outbox").columns }
        #expect(key == ["message_pk"])
    }
}
