// A test-only child process for the durability test (Tests/PrivatusStoreTests/DurabilityTests):
// it appends batches of messages to a store in a loop and prints, after each commit returns,
// the bodies it committed. The parent SIGKILLs it at random moments and then checks that every
// body it saw reported is in the database.
//
// usage: StoreWriter DATABASE-PATH DATABASE-KEY-HEX FIRST-NUMBER
//
// With `--wal-writes` instead of a first number (Tests/PrivatusStoreTests/WALWritesTests), it
// commits one batch of 100 messages of 2,000 bytes and prints how many writes SQLite asked of
// the WAL and how many were made (CPrivatusSQLite), then exits: in a process of its own, so that
// no other test's commits are counted.
//
// With `--spill` instead of a key (WALWritesTests), it commits at synchronous=NORMAL, with a tiny
// page cache, one transaction that spills pages to the WAL and then changes them again (SQLite
// then rewrites frame checksums after the commit frame), lets a second connection checkpoint,
// prints "committed" and kills itself with SIGKILL before anything else touches the WAL.
import CPrivatusSQLite
import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusStore

let arguments = CommandLine.arguments
if arguments.count == 3, arguments[2] == "--spill" {
    let pool = try Store.makePool(path: arguments[1])
    try pool.writeWithoutTransaction { db in
        try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA cache_size = 10")
        try db.execute(sql: "CREATE TABLE spilled (id INTEGER PRIMARY KEY, x BLOB)")
        try db.inTransaction {
            try db.execute(
                sql: """
                    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 400)
                    INSERT INTO spilled SELECT i, randomblob(900) FROM c
                    """)
            try db.execute(sql: "UPDATE spilled SET x = zeroblob(900) WHERE id <= 20")
            return .commit
        }
    }
    let other = try DatabaseQueue(path: arguments[1])
    try other.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    FileHandle.standardOutput.write(Data("committed\n".utf8))
    kill(getpid(), SIGKILL)
}
if arguments.count == 4, arguments[3] == "--wal-writes", let keyBytes = Hex.decodeLowercase(arguments[2]) {
    let store = try Store(path: arguments[1], databaseKey: SymmetricKey(data: keyBytes))
    let peer = PeerID(identityPublicKey: [UInt8](repeating: 6, count: 32))
    var before = (seen: UInt64(0), made: UInt64(0))
    privatus_wal_writes_counts(&before.seen, &before.made)
    try store.append(
        (0..<100).map { number in
            NewMessage(
                peer: peer, direction: .received, state: .delivered, sender: peer, sentAt: UInt64(number),
                body: "w\(number) " + String(repeating: "x", count: 2_000))
        })
    var after = (seen: UInt64(0), made: UInt64(0))
    privatus_wal_writes_counts(&after.seen, &after.made)
    print("wal-writes seen \(after.seen - before.seen) made \(after.made - before.made)")
    exit(0)
}
guard arguments.count == 4, let keyBytes = Hex.decodeLowercase(arguments[2]), let first = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: StoreWriter PATH KEY-HEX FIRST\n".utf8))
    exit(64)
}
let store = try Store(path: arguments[1], databaseKey: SymmetricKey(data: keyBytes))
let peer = PeerID(identityPublicKey: [UInt8](repeating: 5, count: 32))
var next = first
while true {
    let batch = (next..<(next + 1 + next % 7)).map { number in
        NewMessage(
            peer: peer, direction: .received, state: .delivered, sender: peer, sentAt: UInt64(number),
            body: "m\(number)")
    }
    try store.append(batch)
    // Written straight to the pipe (no buffering): a line out means the commit returned.
    FileHandle.standardOutput.write(Data("committed \(batch.map(\.body).joined(separator: " "))\n".utf8))
    next += batch.count
}
