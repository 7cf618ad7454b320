import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusCrypto
import PrivatusTesting
import Synchronization
import Testing

@testable import PrivatusStore

/// Which commits wait for the disk: every write but the few DESIGN.md lets go without
/// (`Store.write(durable:_:)`), and those leave the writer durable again behind them.
@Suite struct WriteDurabilityTests {
    let scratch: TemporaryDirectory
    let store: Store
    let me = PeerID(identityPublicKey: [1])
    /// The statements the writer connection ran, in order, since the trace was installed.
    let statements = Statements()

    final class Statements: Sendable {
        let list = Mutex<[String]>([])
    }

    init() throws {
        scratch = try TemporaryDirectory("privatus-write-durability")
        store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let statements = self.statements
        try store.pool.writeWithoutTransaction { db in
            db.trace(options: .statement) { event in
                statements.list.withLock { $0.append("\(event)") }
            }
        }
    }

    /// The statements traced since the last call, and forgets them.
    func traced() -> [String] {
        statements.list.withLock { taken in
            defer { taken.removeAll() }
            return taken
        }
    }

    func synchronousStatements(_ statements: [String]) -> [String] {
        statements.filter { $0.hasPrefix("PRAGMA synchronous =") }
    }

    @Test func aReceiptCommitsWithoutWaitingForTheDiskAndTheWriterIsDurableAgainAfterIt() throws {
        defer { scratch.remove() }
        let (alice, _, bobKeys) = try SessionStorageTests.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.saveContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        let queued = try store.queueAwaitingSession(
            NewMessage(peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 5, body: "first"), nextTry: 5)
        try store.commitSealed(messageID: queued.id, peer: bob, ciphertext: [9], sessions: PeerSessions([alice]))
        #expect(synchronousStatements(traced()).isEmpty, "durable writes run at the writer's FULL")

        #expect(try store.applyReceipt([queued.id], state: .delivered, from: bob).map(\.id) == [queued.id])
        let receipt = traced()
        #expect(
            synchronousStatements(receipt) == ["PRAGMA synchronous = NORMAL", "PRAGMA synchronous = FULL"],
            "\(receipt)")
        // NORMAL before the transaction began, FULL after it committed.
        let begin = receipt.firstIndex { $0.hasPrefix("BEGIN") }
        let commit = receipt.firstIndex { $0.hasPrefix("COMMIT") }
        #expect(receipt.firstIndex(of: "PRAGMA synchronous = NORMAL")! < begin!)
        #expect(receipt.firstIndex(of: "PRAGMA synchronous = FULL")! > commit!)
        #expect(try store.pragma("synchronous") == 2, "FULL")
        #expect(try store.latestMessages(with: bob).map(\.state) == [.delivered])
        #expect(try store.outbox(dueBy: .max).isEmpty)
    }

    @Test func aFailedWriteWithoutWaitingLeavesTheWriterDurable() throws {
        defer { scratch.remove() }
        struct Refused: Error {}
        let inside = Mutex<Int?>(nil)
        #expect(throws: Refused.self) {
            try store.write(durable: false) { db in
                let level = try Int.fetchOne(db, sql: "PRAGMA synchronous")
                inside.withLock { $0 = level }
                try db.execute(sql: "INSERT INTO settings (name, id, sealed_value) VALUES ('x', x'00', x'00')")
                throw Refused()
            }
        }
        #expect(inside.withLock { $0 } == 1, "NORMAL inside")
        #expect(try store.pragma("synchronous") == 2, "FULL")
        #expect(try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM settings") } == 0)
        // A durable write after it runs at FULL and sets nothing.
        _ = traced()
        let durable = try store.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        #expect(durable == 2)
        #expect(synchronousStatements(traced()).isEmpty)
    }

    /// A transaction whose commit is refused (here a deferred foreign key, checked at `COMMIT`)
    /// is rolled back with the commit's error, and the writer takes the next write.
    @Test func aWriteWhoseCommitFailsIsRolledBackAndTheNextWriteCommits() throws {
        defer { scratch.remove() }
        _ = traced()
        #expect(throws: DatabaseError.self) {
            try store.write { db in
                try db.execute(sql: "PRAGMA defer_foreign_keys = ON")
                try db.execute(sql: "INSERT INTO settings (name, id, sealed_value) VALUES ('x', x'00', x'00')")
                try db.execute(
                    sql: "INSERT INTO outbox (message_pk, id, next_try, sealed_ciphertext) VALUES (99, x'00', 0, x'00')"
                )
            }
        }
        let failed = traced()
        #expect(failed.first == "BEGIN IMMEDIATE TRANSACTION", "\(failed)")
        #expect(failed.contains("COMMIT TRANSACTION") && failed.last == "ROLLBACK TRANSACTION", "\(failed)")
        #expect(try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM settings") } == 0)
        try store.write { db in
            try db.execute(sql: "INSERT INTO settings (name, id, sealed_value) VALUES ('y', x'01', x'00')")
        }
        #expect(try store.pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM settings") } == ["y"])
    }
}
