import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// Keeps WAL checkpoints off the write path: the writer runs without automatic checkpoints, and
/// after a commit that leaves more than ``threshold`` bytes of frames in the WAL, a passive
/// checkpoint runs on a connection and a queue of its own. Passive checkpoints never block the
/// writer or readers; SQLite starts the WAL over at the next write once one has copied every
/// frame.
///
/// What counts is what the WAL holds, which SQLite reports after each commit (its WAL hook), not
/// the file's size: a WAL that SQLite started over keeps its file at the largest size it had and
/// is overwritten from the start, so its size says nothing about how much is left to copy (a
/// node once judged by the size checkpointed after every commit, one more fsync each). Keeping
/// the file at its size is also what makes commits cheaper: overwriting blocks of a file does not
/// change its size, so `fdatasync` has no inode to write.
///
/// A passive checkpoint copies the frames that were there when it began. Writers that commit
/// faster than it copies leave it behind for good: each checkpoint ends with new frames to copy,
/// the WAL is never started over, and it grows without end (to 83 MB in a test's 150 commits
/// back to back, on a busy machine). So once the WAL holds more than ``limit`` bytes of frames,
/// the committer waits: it checkpoints itself while holding the writer, after any background
/// checkpoint, so no frame is added while it copies and the next commit starts the WAL over.
/// (Unless a reader still reads an older state: a passive checkpoint never copies past it, and
/// the WAL starts over once that read has ended; meanwhile, once a checkpoint at the limit has
/// made no progress, the next waits for the WAL to grow by 1 MiB.) Before the limit, the few frames committed
/// while a background checkpoint ran are copied by the next committer (``afterCommit()``).
public final class Checkpointer: Sendable {
    /// The WAL content that triggers a checkpoint (16 MiB).
    public static let threshold = 16 * 1024 * 1024
    /// The WAL content at which a committer checkpoints before it goes on (32 MiB).
    public static let limit = 2 * threshold

    /// Frames in the WAL after the writer's last commit, set by SQLite's WAL hook (on the
    /// writer's queue) and read by ``afterCommit()``.
    final class WALFrames: Sendable {
        let count = Atomic<Int>(0)
    }

    /// Which path ran a checkpoint.
    public enum Kind: String, Sendable {
        /// On the checkpoint queue, off the write path.
        case background
        /// By a committer, for the few frames a background checkpoint left.
        case catchUp = "catch_up"
        /// By a committer, because the WAL held more than ``limit``.
        case limit
    }

    private let pool: DatabasePool
    private let connection: DatabaseQueue
    /// Told of each checkpoint that ran (the node counts them).
    private let observer: (@Sendable (Kind) -> Void)?
    private let frames = WALFrames()
    /// ``threshold`` in frames of this database's page size.
    private let thresholdFrames: Int
    /// ``limit`` in frames.
    private let limitFrames: Int
    private let queue = DispatchQueue(label: "privatus.store.checkpoint", qos: .utility)
    private let completed = Atomic<Int>(0)
    private let completedByWriter = Atomic<Int>(0)

    /// Opens the checkpointing connection, turns the writer's automatic checkpoints off and
    /// installs the WAL hook that counts its frames. One checkpointer per pool: a second would
    /// replace the first one's hook.
    public init(pool: DatabasePool, path: String, observer: (@Sendable (Kind) -> Void)? = nil) throws {
        self.observer = observer
        let pageSize = try pool.writeWithoutTransaction { db -> Int in
            // Also removes SQLite's own WAL hook (the automatic checkpoint): the one installed
            // below replaces it.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            return try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
        }
        // Each frame is a page and its 24-byte header.
        self.thresholdFrames = max(1, Self.threshold / (pageSize + 24))
        self.limitFrames = max(1, Self.limit / (pageSize + 24))
        var configuration = Configuration()
        configuration.label = "privatus.checkpoint"
        self.connection = try DatabaseQueue(path: path, configuration: configuration)
        self.pool = pool
        // Last, when nothing can fail any more: the hook points at `frames`, which `deinit` (run
        // only for a fully made object) takes it away from.
        let frames = self.frames
        pool.writeWithoutTransaction { db in
            _ = sqlite3_wal_hook(
                db.sqliteConnection, Checkpointer.walHook, Unmanaged.passUnretained(frames).toOpaque())
        }
    }

    deinit {
        // The hook points at `frames`, which goes with this object; the pool may outlive it.
        // Reentrant: the last reference could go inside an access to the same pool.
        pool.unsafeReentrantWrite { db in _ = sqlite3_wal_hook(db.sqliteConnection, nil, nil) }
    }

    /// Called by SQLite on the writer's connection after each commit, with the frames in the WAL.
    private static let walHook:
        @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32)
            -> Int32 = { context, _, _, count in
                guard let context else { return SQLITE_OK }
                Unmanaged<WALFrames>.fromOpaque(context).takeUnretainedValue().count.store(
                    Int(count), ordering: .relaxed)
                return SQLITE_OK
            }

    /// How many background checkpoints have run (for tests and metrics).
    public var checkpoints: Int { completed.load(ordering: .relaxed) }

    /// How many checkpoints a committer ran itself because the WAL held more than ``limit``.
    public var writerCheckpoints: Int { completedByWriter.load(ordering: .relaxed) }

    /// Frames in the WAL after the writer's last commit.
    public var walFrames: Int { frames.count.load(ordering: .relaxed) }

    /// What the checkpoints of the WAL's current round (since it last started over) did.
    struct Round {
        /// A background checkpoint is running (or a committer's catch-up).
        var running = false
        /// The frames in the WAL when the round's last checkpoint began (0: none yet).
        var attemptedAt = 0
        /// The frames the round's last checkpoint left copied.
        var copied = 0
        /// Whether it copied every frame it found (a reader on an older state stops it short).
        var copiedAll = false
        /// The frames in the WAL when the last checkpoint at the limit began (0: none).
        var limitAttemptedAt = 0
        /// Whether that checkpoint copied every frame it found.
        var limitCopiedAll = true
        /// Whether it copied more than the checkpoints at the limit before it.
        var limitProgressed = false
        /// The most frames a checkpoint at the limit has copied this round.
        var limitCopied = 0
    }

    private let round = Mutex(Round())
    private let caughtUp = Atomic<Int>(0)

    /// How many checkpoints a committer ran to copy the few frames that were added while a
    /// background checkpoint ran (``afterCommit()``).
    public var catchUps: Int { caughtUp.load(ordering: .relaxed) }

    /// ``threshold`` / 16 in frames (1 MiB): how far the WAL must grow before a checkpoint that
    /// was stopped short is tried again, and how few frames left behind a committer copies
    /// itself.
    private var stepFrames: Int { max(1, thresholdFrames / 16) }

    /// Call after each commit, outside any access to the pool: schedules a passive checkpoint
    /// when the WAL holds more than the threshold and none is running, and checkpoints before it
    /// returns when the WAL holds more than the limit.
    ///
    /// A background checkpoint copies what the WAL held when it began; commits made meanwhile stay
    /// behind, and the WAL starts over only once all is copied. Scheduling another background
    /// checkpoint for those few frames after every commit made a storm of small checkpoints
    /// (two `fsync`s each, dozens a second under load) that rarely caught up. Instead, when a
    /// background checkpoint copied everything it found and at most ``stepFrames`` are left, the
    /// committer copies them itself while holding the writer (a short wait, once per round), and
    /// the next commit starts the WAL over. After a checkpoint that a reader stopped short, the
    /// next waits until the WAL has grown by ``stepFrames``.
    public func afterCommit() {
        let count = frames.count.load(ordering: .relaxed)
        guard count <= limitFrames else {
            // A reader still on an older state stops a checkpoint short, and the WAL cannot start
            // over until that read ends. After a checkpoint at the limit that copied nothing more
            // than the one before it (the reader has not moved), the next waits until the WAL has
            // grown by a step (or started over), instead of holding the writer to scan the whole
            // WAL again after every commit. One that made progress (a short read was in the way)
            // is tried again at the next commit.
            let step = stepFrames
            let planned = round.withLock { round -> Int? in
                // Read again under the lock: a count read before it could be older than the one
                // another committer began at, and look like a WAL started over.
                let count = frames.count.load(ordering: .relaxed)
                let startedOver = count < round.limitAttemptedAt
                guard
                    startedOver || round.limitCopiedAll || round.limitProgressed
                        || count >= round.limitAttemptedAt + step
                else { return nil }
                if startedOver { round.limitCopied = 0 }
                round.limitAttemptedAt = count
                return count
            }
            guard let planned else { return }
            // On the checkpoint queue, so after a background checkpoint in progress (two at once
            // would make one fail as busy). Holding the writer, so it copies every frame unless a
            // reader still reads an older state. A concurrent committer that also saw the limit
            // checkpoints again after this one, finding little or nothing left to copy.
            let result = queue.sync(execute: { checkpointHoldingTheWriter(foundFrames: planned) })
            round.withLock { round in
                guard round.limitAttemptedAt == planned else { return }
                let copied = result?.checkpointedFrameCount ?? 0
                round.limitCopiedAll = result.map { $0.checkpointedFrameCount >= $0.walFrameCount } ?? false
                round.limitProgressed = copied > round.limitCopied
                round.limitCopied = max(round.limitCopied, copied)
            }
            if result != nil {
                completedByWriter.add(1, ordering: .relaxed)
                observer?(.limit)
            }
            return
        }
        /// What to run, with the frames the WAL held when it was planned.
        enum Plan { case none, background(Int), catchUp(Int) }
        let step = stepFrames
        let plan = round.withLock { round -> Plan in
            // Read again under the lock: a count read before it could be older than the one
            // another committer began a checkpoint at, and look like a WAL started over.
            let count = frames.count.load(ordering: .relaxed)
            // The WAL started over since: a new round (a checkpoint still running ends its own).
            if count < round.attemptedAt { round = Round(running: round.running) }
            guard count > thresholdFrames, !round.running else { return .none }
            if round.attemptedAt > 0 {
                guard round.copiedAll || count >= round.attemptedAt + step else { return .none }
                if round.copiedAll, count - round.copied <= step {
                    round.running = true
                    round.attemptedAt = count
                    return .catchUp(count)
                }
            }
            round.running = true
            round.attemptedAt = count
            return .background(count)
        }
        switch plan {
        case .none:
            return
        case .catchUp(let planned):
            if queue.sync(execute: { checkpointHoldingTheWriter(foundFrames: planned) }) != nil {
                caughtUp.add(1, ordering: .relaxed)
                observer?(.catchUp)
            }
            round.withLock { $0.running = false }
        case .background(let planned):
            queue.async { [self] in
                let result = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
                if result != nil {
                    completed.add(1, ordering: .relaxed)
                    observer?(.background)
                }
                record(result, foundFrames: planned)
                round.withLock { $0.running = false }
            }
        }
    }

    /// A passive checkpoint on the writer's connection, holding it: no frame is added while it
    /// copies. Returns what it found and copied, or nil if it did not run.
    private func checkpointHoldingTheWriter(foundFrames: Int) -> (walFrameCount: Int, checkpointedFrameCount: Int)? {
        let result = try? pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        record(result, foundFrames: foundFrames)
        return result
    }

    /// Notes what a checkpoint of this round copied.
    private func record(_ result: (walFrameCount: Int, checkpointedFrameCount: Int)?, foundFrames: Int) {
        round.withLock { round in
            guard round.attemptedAt == foundFrames else { return }  // another round's
            round.copied = result?.checkpointedFrameCount ?? 0
            round.copiedAll = result.map { $0.checkpointedFrameCount >= $0.walFrameCount } ?? false
        }
    }

    /// Waits for a scheduled checkpoint to finish.
    public func drain() {
        queue.sync {}
    }

    /// Copies the whole WAL and truncates it (maintenance), holding the writer, on the checkpoint
    /// queue: never while a background checkpoint runs, which would make it fail as busy.
    public func truncate() throws {
        try queue.sync {
            _ = try pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            // The WAL starts over: so does the round (what held the last checkpoints back is
            // gone with it).
            round.withLock { $0 = Round(running: $0.running) }
        }
    }
}
