import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusCrypto
import PrivatusStore
import PrivatusTesting
import Synchronization
import Testing

@Suite struct StoreTests {
    let scratch: TemporaryDirectory
    let path: String
    let key = SymmetricKey(size: .bits256)
    let me = PeerID(identityPublicKey: [UInt8](repeating: 1, count: 32))
    let bobKey = [UInt8](repeating: 2, count: 32)
    var bob: PeerID { PeerID(identityPublicKey: bobKey) }

    init() throws {
        scratch = try TemporaryDirectory("privatus-store")
        path = scratch.child("privatus.sqlite")
    }

    func message(_ body: String, from sender: PeerID? = nil, at time: UInt64 = 1_800_000_000_000) -> NewMessage {
        NewMessage(
            peer: bob, direction: sender == nil ? .sent : .received, state: .queued, sender: sender ?? me, sentAt: time,
            body: body)
    }

    @Test func databaseIsCreatedWithTheSchemaAndDurableSettings() throws {
        defer { scratch.remove() }
        let store = try Store(path: path, databaseKey: key)
        #expect(try store.appliedMigrations() == ["v1", "v2", "v3", "v4", "v5", "v6"])
        #expect(try store.pragma("secure_delete") == 1)
        #expect(try store.pragma("synchronous") == 2, "FULL")
        #expect(try store.pragma("foreign_keys") == 1)
        #expect(try store.pragma("auto_vacuum") == 2, "incremental")
        // Reopening migrates nothing twice.
        #expect(try Store(path: path, databaseKey: key).appliedMigrations() == ["v1", "v2", "v3", "v4", "v5", "v6"])
    }

    @Test func messagesComeBackInOrderWithSequenceNumbers() throws {
        defer { scratch.remove() }
        let store = try Store(path: path, databaseKey: key)
        try store.append((0..<120).map { message("message \($0)", at: UInt64($0)) })
        try store.append([message("from bob", from: bob)])
        let page = try store.latestMessages(with: bob, limit: 50)
        #expect(page.count == 50)
        #expect(page.map(\.sequence) == Array(71...120))
        #expect(page.last?.body == "from bob" && page.last?.direction == .received && page.last?.sender == bob)
        let earlier = try store.latestMessages(with: bob, limit: 50, before: page.first!.sequence)
        #expect(earlier.map(\.sequence) == Array(21...70))
        #expect(earlier.first?.body == "message 21")
        #expect(try store.latestMessages(with: PeerID(identityPublicKey: [9]), limit: 5).isEmpty)
    }

    @Test func contactsRoundTripAndAreFoundByPeerID() throws {
        defer { scratch.remove() }
        let store = try Store(path: path, databaseKey: key)
        try store.addContact(Contact(peerID: bob, identityKey: bobKey, name: "Bob 🐢", state: .contact))
        #expect(try store.contact(bob)?.name == "Bob 🐢")
        #expect(try store.contact(me) == nil)
        #expect(throws: (any Error).self) {
            try store.addContact(Contact(peerID: bob, identityKey: bobKey, name: "again", state: .request))
        }
        #expect(try store.contacts().map(\.peerID) == [bob])
    }

    @Test func searchFindsWholeWordsOnlyNewestFirst() throws {
        defer { scratch.remove() }
        let store = try Store(path: path, databaseKey: key)
        try store.append([
            message("Lunch at the Café tomorrow?"), message("café closed"), message("cafeteria is open"),
            message("nothing here"),
        ])
        #expect(try store.search("café").map(\.body) == ["café closed", "Lunch at the Café tomorrow?"])
        #expect(try store.search("CAFÉ closed").map(\.body) == ["café closed"])
        #expect(try store.search("caf").isEmpty, "no prefix tokens")
        #expect(try store.search("   ").isEmpty)
    }

    @Test func ordinalsKeepGoingUpAcrossRestartsAndTransactionsThatFailed() throws {
        defer { scratch.remove() }
        func ordinals() throws -> [Int64] {
            try DatabaseQueue(path: path).read { db in
                try Int64.fetchAll(db, sql: "SELECT ordinal FROM messages ORDER BY ordinal")
            }
        }
        var store = try Store(path: path, databaseKey: key)
        // The first commit reserves a block of ordinals; this one fails on its second message's
        // id (the first's) after reserving, and what it reserved is forgotten.
        let twice = [UInt8](repeating: 3, count: 16)
        var first = message("first try")
        first.id = twice
        var second = message("same id")
        second.id = twice
        #expect(throws: (any Error).self) { try store.append([first, second]) }
        try store.append([message("one"), message("two")])
        // A restart goes on above everything the stored reservation covers, and search still
        // finds the newest first.
        store = try Store(path: path, databaseKey: key)
        try store.append([message("three two one")])
        try store.append((0..<2_000).map { message("bulk \($0)") })
        store = try Store(path: path, databaseKey: key)
        try store.append([message("last two")])
        // Two stores on one file (tests and tools may open a second), writing in turns, each
        // past a block: neither gives out what the other reserved.
        let other = try Store(path: path, databaseKey: key)
        for round in 0..<3 {
            try store.append((0..<700).map { message("first's \(round)-\($0)") })
            try other.append((0..<700).map { message("other's \(round)-\($0)") })
        }
        try store.append([message("two stores later")])
        let stored = try ordinals()
        #expect(stored.count == 2_004 + 4_201)
        #expect(stored == stored.sorted() && Set(stored).count == stored.count)
        #expect(
            try store.search("two").map(\.body) == ["two stores later", "last two", "three two one", "two"])
        #expect(try store.latestMessages(with: bob, limit: 1).map(\.body) == ["two stores later"])
        #expect(try store.check().isEmpty)
    }

    @Test func deletingAConversationRemovesItsMessagesAndTokens() throws {
        defer { scratch.remove() }
        let store = try Store(path: path, databaseKey: key)
        try store.append([message("secret plans"), message("more plans")])
        try store.deleteConversation(with: bob)
        #expect(try store.latestMessages(with: bob).isEmpty)
        #expect(try store.search("plans").isEmpty)
        try store.append([message("fresh start")])
        #expect(try store.latestMessages(with: bob).map(\.sequence) == [0])
        // Search would hide orphans behind its join: count the token rows themselves.
        #expect(try Self.tokenRows(at: path) == 2, "only the tokens of \"fresh start\" are left")
        #expect(try store.check().isEmpty)
    }

    static func tokenRows(at path: String) throws -> Int {
        try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM search_tokens") ?? 0
        }
    }

    @Test func checkReportsSearchTokensLeftWithoutTheirMessage() throws {
        defer { scratch.remove() }
        let store = try Store(path: path, databaseKey: key)
        try store.append([message("left behind")])
        #expect(try store.check().isEmpty)
        // Delete the message behind the store's back, as a bug would.
        try DatabaseQueue(path: path).write { db in try db.execute(sql: "DELETE FROM messages") }
        #expect(try store.check() == ["2 search tokens without their message"])
        // And a conversation deleted without its messages.
        try store.append([message("homeless")])
        try DatabaseQueue(path: path).write { db in try db.execute(sql: "DELETE FROM conversations") }
        let problems = try store.check()
        #expect(problems == ["2 search tokens without their message", "1 messages without their conversation"])
    }

    @Test func wrongDatabaseKeyCannotReadAnything() throws {
        defer { scratch.remove() }
        try Store(path: path, databaseKey: key).append([message("hello")])
        let other = try Store(path: path, databaseKey: SymmetricKey(size: .bits256))
        // The blind index differs, so the conversation is not even found…
        #expect(try other.latestMessages(with: bob).isEmpty)
        #expect(try other.search("hello").isEmpty)
    }

    @Test func rawDatabaseHoldsNoContentMarkerOrPeerIDInAnyForm() throws {
        defer { scratch.remove() }
        let marker = "MARKER-\(UUID().uuidString)"
        let store = try Store(path: path, databaseKey: key)
        try store.addContact(Contact(peerID: bob, identityKey: bobKey, name: "Name-\(marker)", state: .contact))
        try store.append([message("before \(marker) after"), message("reply \(marker)", from: bob)])
        try store.deleteConversation(with: PeerID(identityPublicKey: [7]))  // exercise a delete too
        let needles: [(String, [UInt8])] = [
            ("marker", Array(marker.utf8)),
            ("lowercased marker", Array(marker.lowercased().utf8)),
            ("PeerID bytes", bob.bytes),
            ("PeerID hex", Array(bob.hex.utf8)),
            ("PeerID upper hex", Array(bob.hex.uppercased().utf8)),
            ("identity key", bobKey),
        ]
        func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
            bytes.count >= needle.count
                && (0...(bytes.count - needle.count)).contains {
                    bytes[$0] == needle[0] && Array(bytes[$0..<($0 + needle.count)]) == needle
                }
        }
        func scan() throws {
            var everything: [UInt8] = []
            for name in try FileManager.default.contentsOfDirectory(atPath: scratch.path)
            where name.hasPrefix("privatus.sqlite") {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: scratch.child(name))))
                everything += bytes
                for (what, needle) in needles { #expect(!contains(bytes, needle), "\(what) found in \(name)") }
            }
            // The scan does find what is there in the clear: the schema's own words.
            #expect(contains(everything, Array("sealed_content".utf8)))
        }
        try scan()  // the WAL holds the writes now
        try store.checkpoint()
        try scan()  // and the main file after a checkpoint
    }
}

@Suite struct StoreSearchIndexingTests {
    @Test func unsearchableMessagesCanBeIndexedLater() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let peer = PeerID(identityPublicKey: [3])
        let stored = try store.append(
            [NewMessage(peer: peer, direction: .sent, state: .sent, sender: peer, sentAt: 1, body: "quiet words")],
            searchable: false)
        #expect(try store.search("quiet").isEmpty)
        try store.indexForSearch(stored)
        #expect(try store.search("quiet").map(\.body) == ["quiet words"])
        #expect(try store.search("quiet words").map(\.body) == ["quiet words"])
    }
}

@Suite struct RetentionTests {
    @Test func expiredMessagesAndTheirTokensAreDeletedOthersStay() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let peer = PeerID(identityPublicKey: [4])
        let now: UInt64 = 1_800_000_000_000
        func message(_ body: String, expiresAt: UInt64?) -> NewMessage {
            NewMessage(
                peer: peer, direction: .received, state: .delivered, sender: peer, sentAt: 1, body: body,
                expiresAt: expiresAt)
        }
        try store.append([
            message("gone already", expiresAt: now - 1),
            message("gone exactly now", expiresAt: now),
            message("same hour, later", expiresAt: now + 60_000),
            message("next week", expiresAt: now + 7 * 24 * 3_600_000),
            message("forever", expiresAt: nil),
        ])
        #expect(try store.deleteExpiredMessages(now: now) == 2)
        #expect(try store.latestMessages(with: peer).map(\.body) == ["same hour, later", "next week", "forever"])
        #expect(try store.search("gone").isEmpty, "tokens went with their messages")
        #expect(
            try StoreTests.tokenRows(at: scratch.child("privatus.sqlite")) == 6,
            "same, hour, later, next, week, forever")
        #expect(try store.search("later").map(\.body) == ["same hour, later"])
        #expect(try store.deleteExpiredMessages(now: now + 60_000) == 1)
        #expect(try store.check().isEmpty)
    }
}

@Suite struct CacheTests {
    @Test func cachedPagesAndContactsAreNeverStale() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let peer = PeerID(identityPublicKey: [5])
        let other = PeerID(identityPublicKey: [6])
        func message(_ body: String, to target: PeerID) -> NewMessage {
            NewMessage(peer: target, direction: .sent, state: .queued, sender: target, sentAt: 1, body: body)
        }
        for round in 0..<50 {
            try store.append([message("m\(round)", to: peer)])
            let page = try store.latestMessages(with: peer, limit: 3)
            #expect(page.last?.body == "m\(round)", "round \(round)")
            #expect(try store.latestMessages(with: peer, limit: 3) == page, "the cached page is the same page")
            try store.append([message("o\(round)", to: other)])  // another conversation's write
            #expect(try store.latestMessages(with: peer, limit: 3) == page)
        }
        try store.deleteConversation(with: peer)
        #expect(try store.latestMessages(with: peer, limit: 3).isEmpty)
        try store.append([
            NewMessage(
                peer: other, direction: .sent, state: .sent, sender: other, sentAt: 1, body: "fleeting", expiresAt: 10)
        ])
        #expect(try store.latestMessages(with: other, limit: 1).first?.body == "fleeting")
        try store.deleteExpiredMessages(now: 11)
        #expect(try store.latestMessages(with: other, limit: 1).first?.body == "o49")

        #expect(try store.contact(peer) == nil)  // cached as absent…
        try store.addContact(Contact(peerID: peer, identityKey: [5], name: "Now known", state: .contact))
        #expect(try store.contact(peer)?.name == "Now known")  // …and invalidated by the write

        // The list of every contact, after each kind of write to one of them.
        func names() throws -> [String] { try store.contacts().map(\.name) }
        #expect(try names() == ["Now known"])
        #expect(try names() == ["Now known"], "served again")
        try store.saveContact(Contact(peerID: other, identityKey: [6], name: "Other", state: .request))
        #expect(try names() == ["Now known", "Other"])
        try store.saveContact(Contact(peerID: other, identityKey: [6], name: "Renamed", state: .contact))
        #expect(try names() == ["Now known", "Renamed"])
        try store.removeContact(peer)
        #expect(try names() == ["Renamed"])
        // A received message's commit that writes its sender's contact.
        let (_, bobSession, bobKeys) = try SessionStorageTests.pair()
        let stranger = PeerID(identityPublicKey: Array(bobKeys.identity.publicKey.rawRepresentation))
        try store.commitIncoming(
            [
                NewMessage(
                    peer: stranger, direction: .received, state: .delivered, sender: stranger, sentAt: 1, body: "hi",
                    id: [UInt8](repeating: 8, count: 16), number: 1)
            ],
            contact: Contact(
                peerID: stranger, identityKey: Array(bobKeys.identity.publicKey.rawRepresentation), name: "Stranger",
                state: .request),
            sessions: PeerSessions([bobSession]), prekeys: nil)
        #expect(try names() == ["Renamed", "Stranger"])
    }

    @Test func readsRacingWritesNeverServeAnOldPage() async throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let peer = PeerID(identityPublicKey: [7])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    for _ in 0..<300 { _ = try store.latestMessages(with: peer, limit: 5) }
                }
            }
            group.addTask {
                for round in 0..<100 {
                    try store.append([
                        NewMessage(
                            peer: peer, direction: .sent, state: .queued, sender: peer, sentAt: 1, body: "r\(round)")
                    ])
                    // A read after the write returned must see it, whatever the readers cached.
                    let last = try store.latestMessages(with: peer, limit: 5).last?.body
                    guard last == "r\(round)" else { throw StoreError.notFound }
                }
            }
            try await group.waitForAll()
        }
    }
}

@Suite struct CheckpointTests {
    final class Observed: Sendable {
        let kinds = Mutex<[Checkpointer.Kind]>([])
    }

    /// Commits 1 MiB blobs that no checkpoint follows (as when the background ones fell behind)
    /// until the WAL holds more than the limit; how many (at most 100).
    static func commitPastTheLimit(_ pool: DatabasePool, _ checkpointer: Checkpointer, pageSize: Int) throws -> Int {
        var blobs = 0
        while checkpointer.walFrames * (pageSize + 24) <= Checkpointer.limit, blobs < 100 {
            try pool.write { db in
                try db.execute(sql: "INSERT INTO t VALUES (randomblob(?))", arguments: [1024 * 1024])
            }
            blobs += 1
        }
        return blobs
    }

    @Test func checkpointsRunOffTheWritePathAndKeepTheWALBounded() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let store = try Store(path: path, databaseKey: SymmetricKey(size: .bits256))
        #expect(try store.pragma("wal_autocheckpoint") == 0, "the writer never checkpoints on commit")
        let peers = (0..<200).map { PeerID(identityPublicKey: [UInt8(truncatingIfNeeded: $0), 1]) }
        var largestWAL = 0
        for round in 0..<150 {
            try store.append(
                (0..<60).map { index in
                    NewMessage(
                        peer: peers[(round * 60 + index) % peers.count], direction: .sent, state: .sent,
                        sender: peers[0],
                        sentAt: UInt64(index), body: String(repeating: "payload \(round) ", count: 20))
                }, searchable: false)
            let size = (try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int ?? 0
            largestWAL = max(largestWAL, size)
        }
        try store.checkpoint()  // waits for any background checkpoint, then truncates
        #expect(store.backgroundCheckpoints >= 1)
        // Past the limit the committer checkpoints itself, so however far the background
        // checkpoints fall behind, the WAL holds at most the limit and one commit.
        #expect(largestWAL < Checkpointer.limit + Checkpointer.threshold, "largest WAL \(largestWAL) bytes")
        #expect(try store.check().isEmpty)
        #expect(try store.messageCount() == 150 * 60)
    }

    @Test func aWALPastTheLimitIsCheckpointedByTheCommitterAndStartedOver() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let pool = try Store.makePool(path: path)
        let checkpointer = try Checkpointer(pool: pool, path: path)
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (b BLOB)") }
        let pageSize = try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") } ?? 0
        let rounds = try Self.commitPastTheLimit(pool, checkpointer, pageSize: pageSize)
        #expect(rounds < 100)
        checkpointer.afterCommit()
        // It returned after its own checkpoint, which copied every frame.
        #expect(checkpointer.writerCheckpoints == 1)
        let left = try pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        #expect(left.walFrameCount == checkpointer.walFrames)
        #expect(left.checkpointedFrameCount == left.walFrameCount, "nothing was left to copy")
        try pool.write { db in try db.execute(sql: "INSERT INTO t VALUES (randomblob(100))") }
        checkpointer.afterCommit()
        checkpointer.drain()
        #expect(checkpointer.walFrames < 10, "the WAL started over: \(checkpointer.walFrames) frames")
        #expect(checkpointer.writerCheckpoints == 1)
        #expect(try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == rounds + 1)
    }

    /// A reader on an older state stops every checkpoint short. Past the limit, after one
    /// stopped short, the committers do not scan the WAL again holding the writer after each
    /// commit (as they did), only once it has grown by a step; after the read ends, the next such
    /// checkpoint copies everything and the WAL starts over.
    @Test func aCheckpointAtTheLimitThatAReaderStoppedShortWaitsForTheWALToGrow() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let pool = try Store.makePool(path: path)
        let checkpointer = try Checkpointer(pool: pool, path: path)
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (b BLOB)") }
        let pageSize = try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") } ?? 0
        // A read transaction on the state before every write below, held open.
        var snapshot: DatabaseSnapshot? = try pool.makeSnapshot()
        let blobs = try Self.commitPastTheLimit(pool, checkpointer, pageSize: pageSize)
        #expect(blobs < 100)
        // 50 small commits past the limit (about 100 frames, under a step of 1 MiB).
        for _ in 0..<50 {
            try pool.write { db in try db.execute(sql: "INSERT INTO t VALUES (randomblob(100))") }
            checkpointer.afterCommit()
        }
        checkpointer.drain()
        // The first copies the frames before the reader's state (the table's creation), the
        // second copies nothing more: the reader has not moved, so the committers stop trying.
        let stoppedShort = checkpointer.writerCheckpoints
        #expect((1...2).contains(stoppedShort), "\(stoppedShort) checkpoints at the limit in 50 commits")
        #expect(try snapshot?.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == 0)
        #expect(checkpointer.walFrames * (pageSize + 24) > Checkpointer.limit, "the WAL could not start over")
        // The read ends; after another MiB the committer checkpoints again, copying everything.
        snapshot = nil
        try pool.write { db in
            try db.execute(sql: "INSERT INTO t VALUES (randomblob(?))", arguments: [1024 * 1024 + 4096])
        }
        checkpointer.afterCommit()
        #expect(checkpointer.writerCheckpoints == stoppedShort + 1)
        try pool.write { db in try db.execute(sql: "INSERT INTO t VALUES (randomblob(100))") }
        checkpointer.afterCommit()
        checkpointer.drain()
        #expect(checkpointer.walFrames < 10, "the WAL started over: \(checkpointer.walFrames) frames")
        #expect(try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == blobs + 52)
    }

    /// A short read in the way: the checkpoint at the limit copies what came before it, and
    /// since it made progress, the next commit's checkpoint runs (no 1 MiB wait) and, the read
    /// over, copies the rest, so the WAL starts over.
    @Test func aCheckpointAtTheLimitThatMadeProgressIsTriedAgainAtTheNextCommit() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let pool = try Store.makePool(path: path)
        let checkpointer = try Checkpointer(pool: pool, path: path)
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (b BLOB)") }
        let pageSize = try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") } ?? 0
        let blobs = try Self.commitPastTheLimit(pool, checkpointer, pageSize: pageSize)
        #expect(blobs < 100)
        // A read of the state so far, still open when the next commit checkpoints.
        var snapshot: DatabaseSnapshot? = try pool.makeSnapshot()
        try pool.write { db in try db.execute(sql: "INSERT INTO t VALUES (randomblob(100))") }
        checkpointer.afterCommit()
        #expect(checkpointer.writerCheckpoints == 1)
        let copied = try pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        #expect(copied.checkpointedFrameCount < copied.walFrameCount, "the read kept the last commit back")
        #expect(try snapshot?.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == blobs)
        snapshot = nil
        try pool.write { db in try db.execute(sql: "INSERT INTO t VALUES (randomblob(100))") }
        checkpointer.afterCommit()
        #expect(checkpointer.writerCheckpoints == 2, "tried again at once")
        try pool.write { db in try db.execute(sql: "INSERT INTO t VALUES (randomblob(100))") }
        checkpointer.afterCommit()
        checkpointer.drain()
        #expect(checkpointer.walFrames < 10, "the WAL started over: \(checkpointer.walFrames) frames")
        #expect(try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == blobs + 3)
    }

    @Test func commitsBackToBackStartTheWALOverWithAFewCheckpointsARound() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let pool = try Store.makePool(path: path)
        let observed = Observed()
        let checkpointer = try Checkpointer(pool: pool, path: path) { kind in
            observed.kinds.withLock { $0.append(kind) }
        }
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (b BLOB)") }
        // As a busy node commits: back to back, each commit followed by `afterCommit`, so commits
        // land while background checkpoints run. Each commit adds about 9 frames.
        var rounds = 0
        var commits = 0
        var previous = 0
        var written = 0  // frames
        while rounds < 3, commits < 20_000 {
            try pool.write { db in
                try db.execute(sql: "INSERT INTO t VALUES (randomblob(?))", arguments: [32 * 1024])
            }
            checkpointer.afterCommit()
            commits += 1
            let frames = checkpointer.walFrames
            if frames < previous {
                rounds += 1
                written += frames
            } else {
                written += frames - previous
            }
            previous = frames
        }
        checkpointer.drain()
        let made = checkpointer.checkpoints + checkpointer.catchUps + checkpointer.writerCheckpoints
        let counts =
            "\(checkpointer.checkpoints) background, \(checkpointer.catchUps) catch-ups, "
            + "\(checkpointer.writerCheckpoints) at the limit, \(commits) commits"
        #expect(rounds == 3, "the WAL started over \(rounds) times: \(counts)")
        // At most one background checkpoint per MiB of WAL written and one catch-up a round,
        // whatever the timing (typically two or three checkpoints a round; the code before made
        // hundreds, one after nearly every commit, and reached the limit every round).
        let pageSize = try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") } ?? 0
        let step = Checkpointer.threshold / 16 / (pageSize + 24)
        #expect(made <= written / step + 2 * rounds + checkpointer.writerCheckpoints, "\(counts)")
        // And rounds end by a catch-up, not only at the limit (as they all did before).
        #expect(checkpointer.catchUps >= 1, "\(counts)")
        // The node's metric hears of each.
        let kinds = observed.kinds.withLock { $0 }
        #expect(kinds.count == made)
        #expect(kinds.filter { $0 == .catchUp }.count == checkpointer.catchUps)
        #expect(kinds.filter { $0 == .background }.count == checkpointer.checkpoints)
        #expect(try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == commits)
    }

    @Test func aWALStartedOverIsNotCheckpointedAgainUntilItHoldsTheThresholdAgain() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let pool = try Store.makePool(path: path)
        let checkpointer = try Checkpointer(pool: pool, path: path)
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (b BLOB)") }
        func commit(_ bytes: Int) throws {
            try pool.write { db in try db.execute(sql: "INSERT INTO t VALUES (randomblob(?))", arguments: [bytes]) }
            checkpointer.afterCommit()
            checkpointer.drain()
        }
        var rounds = 0
        while checkpointer.checkpoints == 0, rounds < 1_000 {
            try commit(64 * 1024)
            rounds += 1
        }
        #expect(checkpointer.checkpoints == 1, "one checkpoint once the WAL held the threshold")
        #expect(rounds > 200, "not before: \(rounds) commits of 64 KiB")
        func walFileSize() -> Int {
            (try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int ?? 0
        }
        #expect(walFileSize() > Checkpointer.threshold)
        // SQLite starts the WAL over at the next commit and overwrites it from the start: the
        // file keeps its size, but holds a few frames, and no further checkpoint is due.
        for _ in 0..<20 { try commit(100) }
        #expect(checkpointer.checkpoints == 1)
        #expect(checkpointer.walFrames < 100, "\(checkpointer.walFrames) frames")
        #expect(walFileSize() > Checkpointer.threshold)
        #expect(try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == rounds + 20)
    }
}
