import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusCrypto
import PrivatusTesting
import Synchronization
import Testing

@testable import PrivatusStore

/// The sync thread of deferred commits: what waits for a commit runs only after a sync that
/// covers it, in the order asked, and commits that come while a sync runs share the next one.
@Suite struct WALSyncTests {
    /// An `fdatasync` stand-in that blocks until the test lets each call through.
    final class HeldSync: Sendable {
        private let permits = DispatchSemaphore(value: 0)
        private let entered = Atomic<Int>(0)

        /// Lets `count` calls through.
        func allow(_ count: Int = 1) {
            for _ in 0..<count { permits.signal() }
        }

        /// Calls begun so far (the one at open included).
        var calls: Int { entered.load(ordering: .relaxed) }

        var function: @Sendable (Int32) -> Int32 {
            { _ in
                self.entered.add(1, ordering: .relaxed)
                self.permits.wait()
                return 0
            }
        }
    }

    /// The actions that ran, in order.
    final class Ran: Sendable {
        private let list = Mutex<[Int]>([])
        func add(_ value: Int) { list.withLock { $0.append(value) } }
        var values: [Int] { list.withLock { $0 } }
    }

    /// Looks until `condition` holds (a bounded guard against hangs, not a timing assertion).
    func eventually(_ condition: () -> Bool) async throws {
        for _ in 0..<3_000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(condition())
    }

    @Test func whatWaitsForACommitRunsAfterTheSyncThatCoversItInTheOrderAsked() async throws {
        let scratch = try TemporaryDirectory("privatus-wal-sync")
        defer { scratch.remove() }
        let sync = HeldSync()
        sync.allow()  // the sync at open
        let wal = try WALSync(walPath: scratch.child("db-wal"), syncFile: sync.function)
        #expect(sync.calls == 1)
        let ran = Ran()
        wal.whenDurable(wal.mark()) { ran.add(0) }
        #expect(ran.values == [0], "nothing committed: it runs at once")

        wal.committedOne()
        let first = wal.mark()
        wal.whenDurable(first) { ran.add(1) }
        try await eventually { sync.calls == 2 }  // the sync thread is in its sync
        wal.committedOne()
        let second = wal.mark()
        #expect(second == first + 1)
        wal.whenDurable(second) { ran.add(2) }
        // Covered already, but asked after two that wait: it keeps its place.
        wal.whenDurable(first - 1) { ran.add(3) }
        #expect(!wal.isDurable(first))
        #expect(ran.values == [0])

        sync.allow()  // the sync that began before the second commit: it covers the first only
        try await eventually { ran.values.count == 2 && sync.calls == 3 }
        #expect(ran.values == [0, 1])
        #expect(wal.isDurable(first) && !wal.isDurable(second))

        sync.allow()
        try await eventually { ran.values.count == 4 }
        #expect(ran.values == [0, 1, 2, 3])
        #expect(wal.isDurable(second))
        #expect(wal.syncCount == 2)
        await wal.durable(second)  // durable: returns without a sync
        #expect(sync.calls == 3)
    }

    @Test func commitsMadeWhileASyncRunsShareTheNextOne() async throws {
        let scratch = try TemporaryDirectory("privatus-wal-sync")
        defer { scratch.remove() }
        let sync = HeldSync()
        sync.allow()
        let wal = try WALSync(walPath: scratch.child("db-wal"), syncFile: sync.function)
        let ran = Ran()
        wal.committedOne()
        wal.whenDurable(wal.mark()) { ran.add(1) }
        try await eventually { sync.calls == 2 }
        for value in 2...11 {
            wal.committedOne()
            wal.whenDurable(wal.mark()) { ran.add(value) }
        }
        sync.allow(2)
        try await eventually { ran.values.count == 11 }
        #expect(ran.values == Array(1...11))
        #expect(wal.syncCount == 2, "ten commits, one sync")
    }

    @Test func aStoresDeferredCommitReturnsAtNormalAndIsSyncedBeforeWhatWaitsForItRuns() async throws {
        let scratch = try TemporaryDirectory("privatus-wal-sync")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let levels = Mutex<[String]>([])
        try await store.pool.writeWithoutTransaction { db in
            db.trace(options: .statement) { event in
                let statement = "\(event)"
                if statement.hasPrefix("PRAGMA synchronous") {
                    levels.withLock { $0.append(statement) }
                } else if statement.hasPrefix("COMMIT") {
                    levels.withLock { $0.append("COMMIT") }
                }
            }
        }
        let (alice, _, bobKeys) = try SessionStorageTests.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.saveContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        levels.withLock { $0.removeAll() }
        let before = store.durability.mark()
        let syncsBefore = store.durability.syncCount
        let message = NewMessage(
            peer: bob, direction: .sent, state: .queued, sender: PeerID(identityPublicKey: [1]), sentAt: 5,
            body: "deferred")
        let stored = try store.commitOutgoing(
            [(message, [9])], sessions: [bob: PeerSessions([alice])], nextTry: 5, commit: .deferred)
        #expect(stored.map(\.body) == ["deferred"])
        #expect(
            levels.withLock { $0 } == ["PRAGMA synchronous = NORMAL", "COMMIT", "PRAGMA synchronous = FULL"])
        let mark = store.durability.mark()
        #expect(mark == before + 1)
        #expect(try store.pragma("synchronous") == 2, "FULL again")

        let ran = Ran()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            store.durability.whenDurable(mark) {
                ran.add(store.durability.syncCount - syncsBefore)
                done.resume()
            }
        }
        #expect(ran.values == [1], "one sync ran before it")
        #expect(try store.outbox(dueBy: .max).map(\.messageID) == [stored[0].id])
    }
}
