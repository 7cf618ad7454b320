import Foundation
import GRDB
import Synchronization

/// Keeps WAL checkpoints off the write path: the writer runs with `wal_autocheckpoint = 0`,
/// and after a commit that leaves the WAL larger than ``threshold`` bytes, a passive checkpoint
/// runs on a connection and a queue of its own. Passive checkpoints never block the writer or
/// readers; SQLite starts the WAL over at the next write once one has copied every frame.
public final class Checkpointer: Sendable {
    /// The WAL size that triggers a checkpoint (16 MiB).
    public static let threshold = 16 * 1024 * 1024

    private let connection: DatabaseQueue
    private let walPath: String
    private let queue = DispatchQueue(label: "privatus.store.checkpoint", qos: .utility)
    private let running = Atomic<Bool>(false)
    private let completed = Atomic<Int>(0)

    /// Opens the checkpointing connection and turns the writer's automatic checkpoints off.
    public init(pool: DatabasePool, path: String) throws {
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        var configuration = Configuration()
        configuration.label = "privatus.checkpoint"
        self.connection = try DatabaseQueue(path: path, configuration: configuration)
        self.walPath = path + "-wal"
    }

    /// How many checkpoints have run (for tests and metrics).
    public var checkpoints: Int { completed.load(ordering: .relaxed) }

    /// Call after each commit: schedules a passive checkpoint when the WAL has grown past the
    /// threshold and none is running.
    public func afterCommit() {
        var info = stat()
        guard stat(walPath, &info) == 0, Int(info.st_size) > Self.threshold else { return }
        guard running.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        queue.async { [self] in
            _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            completed.add(1, ordering: .relaxed)
            running.store(false, ordering: .releasing)
        }
    }

    /// Waits for a scheduled checkpoint to finish.
    public func drain() {
        queue.sync {}
    }
}
