import CPrivatusSQLite
import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusCrypto
import Synchronization

/// The profile's database: one SQLite file in WAL mode, opened through a GRDB `DatabasePool`
/// (one writer, concurrent readers), with every user value sealed (docs/PROTOCOL.md, "Storage").
///
/// Every connection runs with `foreign_keys=ON` and `secure_delete=ON`, and the writer with
/// `synchronous=FULL` (except around a receipt's transaction, ``write(durable:_:)``): a committed
/// transaction survives a power loss, and deleted content is overwritten.
public final class Store: Sendable {
    /// The database file's name inside the profile.
    public static let fileName = "privatus.sqlite"

    let pool: DatabasePool
    let sealer: Sealer
    let index: BlindIndex
    /// Runs WAL checkpoints off the write path.
    let checkpointer: Checkpointer
    /// Decrypted latest pages of conversations, keyed by conversation index, limit and bound.
    let pages = PageCache<[StoredMessage]>(capacity: 256)
    /// Decrypted contacts, keyed by peer index.
    let contactCache = PageCache<Contact?>(capacity: 1024)
    /// Every contact, as ``contacts()`` lists them (one entry).
    let contactListCache = PageCache<[Contact]>(capacity: 1)
    /// Decrypted sessions of the peers messages last went to or came from, keyed by peer index.
    /// Every write of a peer's sessions invalidates its entry once it has committed.
    let sessionCache = PageCache<PeerSessions>(capacity: 256)
    /// Skipped message keys held per contact, for the node-wide budget.
    let skippedKeys = SkippedKeyLedger()
    /// Message ordinals, given out from blocks reserved in `counters`.
    let ordinals = Ordinals()
    private let lastWriteInstant = Mutex<ContinuousClock.Instant?>(nil)
    /// The writer connection's `synchronous` level.
    private let writerSync = WriterSynchronous()

    /// When the last write transaction ended (nil: none since the store was opened); the
    /// maintenance policy waits for the store to be idle.
    public var lastWrite: ContinuousClock.Instant? { lastWriteInstant.withLock { $0 } }

    /// The skipped message keys all stored sessions may hold together.
    public let skippedKeyBudget: Int
    /// Told how long each write transaction took, from the call to its commit (waiting for the
    /// writer included): the node's database write latency metric.
    let writeObserver: (@Sendable (Duration) -> Void)?

    /// Opens (creating and migrating if needed) the database at `path` with the keys derived
    /// from `databaseKey`.
    public init(
        path: String, databaseKey: SymmetricKey, skippedKeyBudget: Int = Store.defaultSkippedKeyBudget,
        observingWrites writeObserver: (@Sendable (Duration) -> Void)? = nil,
        observingCheckpoints checkpointObserver: (@Sendable (Checkpointer.Kind) -> Void)? = nil
    ) throws {
        self.skippedKeyBudget = skippedKeyBudget
        self.writeObserver = writeObserver
        let pool = try Self.makePool(path: path)
        self.checkpointer = try Checkpointer(pool: pool, path: path, observer: checkpointObserver)
        try Schema.migrator.migrate(pool)
        let keys = StoreKeys(databaseKey: databaseKey)
        self.pool = pool
        self.sealer = Sealer(key: keys.seal)
        self.index = BlindIndex(indexKey: keys.index, searchKey: keys.search)
    }

    /// The page cache of the writer connection (32 MiB) and of each reader (8 MiB): the hot
    /// b-tree pages of a million-message database stay in memory instead of being re-read.
    public static let writerCacheKiB = 32 * 1024
    public static let readerCacheKiB = 8 * 1024

    /// A `DatabasePool` configured as the store uses it: WAL, foreign keys, `secure_delete`,
    /// incremental auto-vacuum on creation, `synchronous=FULL` on the writer, and the page
    /// caches above. (The storage benchmark's plaintext reference uses the same.)
    public static func makePool(path: String) throws -> DatabasePool {
        // Each transaction's WAL frames in one write (CPrivatusSQLite); without it (not expected)
        // SQLite writes them as it always does.
        _ = privatus_wal_writes_register()
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.label = "privatus"
        configuration.prepareDatabase { db in
            // auto_vacuum takes effect only before the first table exists (GRDB's WAL set-up comes
            // after this); on an existing database it changes nothing. Incremental keeps
            // `db vacuum` cheap.
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL") }
            try db.execute(
                sql:
                    "PRAGMA secure_delete = ON; PRAGMA cache_size = -\(readerCacheKiB)"
            )
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets synchronous = NORMAL on the writer when it enables WAL; a commit that
        // acknowledges a message or advances a ratchet must be durable before anything leaves the
        // node (DESIGN.md, "Storage"), so FULL it is, and only `write(durable: false)` lowers it.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA cache_size = -\(writerCacheKiB)")
        }
        return pool
    }

    /// The applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Schema.migrator.appliedMigrations(db) }
    }

    /// The value of a pragma on a connection the store writes with.
    public func pragma(_ name: String) throws -> Int? {
        guard name.allSatisfy({ $0.isLetter || $0 == "_" }) else { return nil }
        return try pool.write { db in try Int.fetchOne(db, sql: "PRAGMA \(name)") }
    }

    /// Runs `body` in a write transaction, then lets the checkpointer look at the WAL. When the
    /// transaction fails, in-memory state recorded inside it (the skipped-key ledger) is dropped.
    ///
    /// A durable write (the default) returns once its commit is on the disk (`synchronous=FULL`).
    /// `durable: false` is for the transactions DESIGN.md allows it: those that neither
    /// acknowledge a received message nor record a ratchet advance, and whose loss in a power
    /// failure costs nothing but the repetition of work that converges (a delivered receipt: the
    /// message goes back to `sent`, is resent from its stored ciphertext and acknowledged again).
    /// Such a commit is written to the WAL without waiting for the disk (`synchronous=NORMAL`):
    /// it survives the process being killed, and the next durable commit's sync takes it to the
    /// disk with it (the WAL is one file, written in commit order). A power failure before then
    /// loses it and nothing after it.
    func write<T>(durable: Bool = true, _ body: (Database) throws -> T) throws -> T {
        let result: T
        let start = ContinuousClock.now
        // Timed to its commit: a checkpoint the committer runs after it is not the write's.
        func ended() {
            let end = ContinuousClock.now
            lastWriteInstant.withLock { $0 = end }
            writeObserver?(end - start)
        }
        do {
            result = try pool.writeWithoutTransaction { db in
                try writerSync.set(durable ? .full : .normal, on: db)
                // Back to FULL on the way out, whatever happened: every other access to the writer
                // (GRDB's own included) expects it. Should that fail, the next durable write sets
                // it before it begins.
                defer { if !durable { try? writerSync.set(.full, on: db) } }
                return try Self.inTransaction(db, body)
            }
        } catch {
            ended()
            skippedKeys.reset()
            throw error
        }
        ended()
        checkpointer.afterCommit()
        return result
    }

    /// Runs `body` in an immediate transaction on `db` (the writer, outside a transaction) and
    /// commits it; rolls it back when `body` or the commit throws, and rethrows that error.
    ///
    /// The same as GRDB's `inTransaction(.immediate)`, with the `BEGIN` and `COMMIT` statements
    /// prepared once per connection (GRDB's cache) instead of compiled for every transaction:
    /// at 1,000 messages a second a node runs one or two transactions per message, and each
    /// compile cost about 5–12 µs (the rollback, rare, is GRDB's). The store never nests
    /// transactions and no body goes on after a database error, so GRDB's savepoints and its
    /// check for a transaction SQLite aborted on its own are not needed here.
    static func inTransaction<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T {
        try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
        do {
            let result = try body(db)
            try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
            return result
        } catch {
            // SQLite may already have rolled back (a full disk, an I/O error): then the rollback
            // fails, which changes nothing; the error to report is the first.
            if db.isInsideTransaction { try? db.rollback() }
            throw error
        }
    }

    /// Runs `body`, which only reads, on the writer's connection outside a transaction: for the
    /// reads the messenger makes between its own writes (the outbox it is about to send, whether
    /// a received id is stored). The writer's page cache stays valid across its own commits,
    /// where a reader connection drops its whole cache whenever the database changed, and no
    /// read transaction is begun and ended around it. Nothing else writes while `body` runs (the
    /// writer is serial), so several statements in it see one state. It waits for a write in
    /// progress, as the messenger's next write would.
    func readOnWriter<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction(body)
    }

    /// How many background checkpoints have run.
    public var backgroundCheckpoints: Int { checkpointer.checkpoints }

    /// Writes the WAL into the database file and truncates it.
    public func checkpoint() throws {
        try checkpointer.truncate()
    }

    /// A random 16-byte row id (``SecureRandom``: no system call per id).
    static func newRowID() -> [UInt8] {
        SecureRandom.bytes(16)
    }
}

/// The `synchronous` level of the writer connection, set only between transactions (SQLite refuses
/// to change it inside one) and only through ``set(_:on:)``, which skips the pragma when the level
/// is already the one asked for. Used on the writer's queue only; the lock makes it `Sendable`.
final class WriterSynchronous: Sendable {
    enum Level: String { case full = "FULL", normal = "NORMAL" }

    /// `makePool` leaves the writer at FULL.
    private let level = Mutex<Level>(.full)

    /// Sets `wanted` on `db` (the writer, outside a transaction). The recorded level changes only
    /// once the pragma has run, so a failure leaves it saying what the connection has.
    func set(_ wanted: Level, on db: Database) throws {
        guard level.withLock({ $0 }) != wanted else { return }
        try db.execute(sql: "PRAGMA synchronous = \(wanted.rawValue)")
        level.withLock { $0 = wanted }
    }
}
