import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusStore
import PrivatusTesting
import Testing

/// The store's WAL writes are gathered per transaction (CPrivatusSQLite): a commit of many pages
/// reaches the file in a few writes, and what it committed reads back whole.
@Suite(.serialized) struct WALWritesTests {
    @Test func aCommitOfManyPagesIsWrittenInAFewWritesAndReadsBackWhole() async throws {
        let scratch = try TemporaryDirectory("privatus-wal-writes")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let key = SymmetricKey(size: .bits256)
        let keyHex = key.withUnsafeBytes { Hex.encode($0) }
        let result = try await CLIProcess(product: "StoreWriter").run([path, keyHex, "--wal-writes"])
        #expect(result.status == 0, "\(result.stderr)")
        let words = result.stdout.split(separator: " ").map {
            String($0).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let seen = words.firstIndex(of: "seen").flatMap { Int(words[$0 + 1]) } ?? 0
        let made = words.firstIndex(of: "made").flatMap { Int(words[$0 + 1]) } ?? 0
        // 100 messages of 2 KB: more than 50 pages, two writes each as SQLite asks (a frame's
        // header, then its page); gathered, one write per 64 KiB.
        #expect(seen > 100, "\(result.stdout)")
        #expect(made >= 1 && made * 8 <= seen, "\(result.stdout)")

        let store = try Store(path: path, databaseKey: key)
        #expect(try store.check().isEmpty)
        let peer = PeerID(identityPublicKey: [UInt8](repeating: 6, count: 32))
        let bodies = try store.latestMessages(with: peer, limit: Int.max).map(\.body)
        #expect(Set(bodies) == Set((0..<100).map { "w\($0) " + String(repeating: "x", count: 2_000) }))
    }

    /// A transaction that spilled pages to the WAL and changed them again has its frames'
    /// checksums redone after its commit frame: at NORMAL nothing follows that write, so it must
    /// not wait in the gathering. Killed right after the commit (and a checkpoint by another
    /// connection), the process loses nothing and the database stays sound.
    @Test func aSpilledTransactionCommittedAtNormalSurvivesAKillAfterACheckpoint() async throws {
        let scratch = try TemporaryDirectory("privatus-wal-spill")
        defer { scratch.remove() }
        let path = scratch.child("spill.sqlite")
        let result = try await CLIProcess(product: "StoreWriter").run([path, "--spill"])
        #expect(result.status == 128 + SIGKILL, "\(result.stderr)")
        #expect(result.stdout == "committed\n")
        let database = try DatabaseQueue(path: path)
        let (check, rows, changed) = try await database.read { db in
            (
                try String.fetchAll(db, sql: "PRAGMA integrity_check"),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM spilled"),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM spilled WHERE x = zeroblob(900)")
            )
        }
        #expect(check == ["ok"])
        #expect(rows == 400)
        #expect(changed == 20)
    }

    /// Frames a transaction spilled and then rolled back (SQLite makes no call on the WAL for
    /// it) must not reach the file later, over the frames another connection committed at the
    /// same place meanwhile: they are written before the WAL's write lock goes, or (in exclusive
    /// locking mode, which takes no such lock) before the lock on the database file goes.
    @Test(arguments: [false, true])
    func framesOfARolledBackTransactionNeverOverwriteAnotherConnectionsCommit(exclusive: Bool) async throws {
        let scratch = try TemporaryDirectory("privatus-wal-rollback")
        defer { scratch.remove() }
        let path = scratch.child("rollback.sqlite")
        let first = try Store.makePool(path: path)
        try await first.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0")
            try db.execute(
                sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, x BLOB); CREATE TABLE u (id INTEGER PRIMARY KEY, y TEXT)")
            try db.execute(
                sql:
                    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50) INSERT INTO u SELECT i, 'first-' || i FROM c"
            )
            try db.execute(
                sql:
                    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60) INSERT INTO t SELECT i, randomblob(3000) FROM c"
            )
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        // A small cache: the update spills frames to the WAL before it is rolled back.
        try await first.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA cache_size = 5")
            if exclusive { try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE") }
            try db.inTransaction {
                try db.execute(sql: "UPDATE t SET x = randomblob(3000)")
                return .rollback
            }
            if exclusive {
                // Back to normal locking: the next transaction releases the file lock.
                try db.execute(sql: "PRAGMA locking_mode = NORMAL")
                try db.inTransaction(.immediate) { .commit }
            }
        }
        // The other connection opens once the first is back to normal locking.
        let second = try DatabaseQueue(path: path)
        try await second.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0")
        }
        try await second.write { db in try db.execute(sql: "UPDATE u SET y = 'second-' || id") }
        // The first connection uses its WAL again.
        _ = try await first.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM u") }
        let (check, rows, lowest) = try await DatabaseQueue(path: path).read { db in
            (
                try String.fetchAll(db, sql: "PRAGMA integrity_check"),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM u"),
                try String.fetchOne(db, sql: "SELECT min(y) FROM u")
            )
        }
        #expect(check == ["ok"])
        #expect(rows == 50)
        #expect(lowest == "second-1")
    }
}
