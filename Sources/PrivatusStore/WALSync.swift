import Foundation
import PrivatusCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Makes the commits that did not wait for the disk durable, on a thread of its own, before
/// whatever depends on them leaves the node (``DurabilityBarrier``).
///
/// A deferred commit (``Store/Commit/deferred``) is written to the WAL at `synchronous=NORMAL`:
/// the writer does not wait for `fdatasync`, so the messenger and the writer go on with the next
/// batch, a receipt or a received message while the disk works. Each one is counted. Once
/// something waits for a mark, this thread calls `fdatasync` on the WAL for every commit counted
/// when it began, then runs, in order, what waited for those. One sync covers every commit
/// before it (the WAL is one file, written in commit order), so commits that come while a sync
/// runs share the next one.
///
/// The descriptor is this object's own, opened on the store's WAL file: `fdatasync` makes the
/// file's data durable whichever descriptor wrote it. The WAL stays the same file while the
/// store is open (SQLite removes it only when its last connection closes; a truncation keeps
/// it).
///
/// A failed `fdatasync` stops the process: after one, the kernel may have dropped the pages it
/// could not write, and going on would let out bytes whose commit may never reach the disk.
public final class WALSync: DurabilityBarrier, Sendable {
    private struct State {
        /// Every commit up to this count is durable.
        var synced: UInt64 = 0
        /// Actions waiting for their mark, in the order asked.
        var waiting: [(mark: UInt64, action: @Sendable () -> Void)] = []
        /// The sync thread is running (syncing, or running actions it took).
        var running = false
    }

    private let descriptor: Int32
    /// Deferred commits so far.
    private let committed = Atomic<UInt64>(0)
    private let state = Mutex(State())
    private let syncs = Atomic<Int>(0)
    private let queue = DispatchQueue(label: "privatus.store.sync", qos: .userInitiated)
    /// `fdatasync`, or what a test puts in its place; returns 0 or an `errno`.
    private let syncFile: @Sendable (Int32) -> Int32

    /// Opens the WAL file at `walPath` and makes whatever it holds durable: a process killed
    /// after a deferred commit left it written but perhaps not synced, and this node may send
    /// what it holds.
    /// - Throws: ``StoreError/syncFailed`` when the file cannot be opened or synced.
    init(walPath: String, syncFile: (@Sendable (Int32) -> Int32)? = nil) throws {
        let descriptor = open(walPath, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StoreError.syncFailed }
        self.descriptor = descriptor
        self.syncFile = syncFile ?? Self.fdatasyncRetrying
        guard self.syncFile(descriptor) == 0 else {
            close(descriptor)
            throw StoreError.syncFailed
        }
    }

    deinit {
        close(descriptor)
    }

    private static let fdatasyncRetrying: @Sendable (Int32) -> Int32 = { descriptor in
        while fdatasync(descriptor) != 0 {
            guard errno == EINTR else { return errno }
        }
        return 0
    }

    /// Counts a deferred commit; called on the writer's queue once the commit has returned.
    func committedOne() {
        committed.add(1, ordering: .releasing)
    }

    /// How many syncs this thread has run.
    public var syncCount: Int { syncs.load(ordering: .relaxed) }

    public func mark() -> UInt64 {
        committed.load(ordering: .acquiring)
    }

    public func isDurable(_ mark: UInt64) -> Bool {
        state.withLock { $0.synced >= mark }
    }

    public func whenDurable(_ mark: UInt64, _ action: @escaping @Sendable () -> Void) {
        let (now, start) = state.withLock { state -> (Bool, Bool) in
            if state.synced >= mark, state.waiting.isEmpty, !state.running { return (true, false) }
            state.waiting.append((mark, action))
            let start = !state.running
            state.running = true
            return (false, start)
        }
        if now {
            action()
        } else if start {
            queue.async { self.run() }
        }
    }

    /// Syncs and runs the actions whose marks are covered, until none waits.
    private func run() {
        while true {
            let target = committed.load(ordering: .acquiring)
            let covered = state.withLock { $0.synced >= target }
            if !covered {
                let result = syncFile(descriptor)
                guard result == 0 else {
                    // Fail-stop (see the type's documentation); the message names no user data.
                    fatalError("fdatasync of the database's WAL failed (errno \(result)); the node stops")
                }
                syncs.add(1, ordering: .relaxed)
            }
            let ready = state.withLock { state -> [@Sendable () -> Void] in
                state.synced = max(state.synced, target)
                let count = state.waiting.prefix { $0.mark <= state.synced }.count
                let ready = state.waiting.prefix(count).map(\.action)
                state.waiting.removeFirst(count)
                if ready.isEmpty, state.waiting.isEmpty { state.running = false }
                return ready
            }
            for action in ready { action() }
            // Ran none and nothing waits: done (`running` was cleared under the lock). After
            // running some, look again: more may have been asked for meanwhile.
            if ready.isEmpty, state.withLock({ !$0.running }) { return }
        }
    }
}
