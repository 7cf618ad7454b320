import Foundation
import GRDB

extension Store {
    /// `PRAGMA integrity_check`, `PRAGMA foreign_key_check`, and search tokens or messages left
    /// without their message or conversation: the problems found, empty when the database is
    /// sound.
    public func check() throws -> [String] {
        try pool.read { db in
            var problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
            let violations = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check")
            problems += violations.map { "foreign key violation in \($0["table"] as String? ?? "?")" }
            // Search tokens are deleted with their message by hand (no foreign key): look for
            // any left behind.
            let orphans =
                try Int.fetchOne(
                    db,
                    sql:
                        "SELECT count(*) FROM search_tokens WHERE message_ordinal NOT IN (SELECT ordinal FROM messages)"
                ) ?? 0
            if orphans > 0 { problems.append("\(orphans) search tokens without their message") }
            // Messages are tied to their conversation by their key, not a foreign key.
            let homeless =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM messages WHERE (pk >> 32) NOT IN (SELECT pk FROM conversations)")
                ?? 0
            if homeless > 0 { problems.append("\(homeless) messages without their conversation") }
            return problems
        }
    }

    /// How many messages the database holds.
    public func messageCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM messages") ?? 0 }
    }
}

extension Store {
    /// `PRAGMA optimize` then `ANALYZE`: refreshes the query planner's statistics.
    public func optimize() throws {
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA optimize; ANALYZE") }
    }

    /// Returns free pages to the file system (`PRAGMA incremental_vacuum`); the number of pages
    /// freed.
    @discardableResult
    public func vacuum() throws -> Int {
        let freed = try pool.writeWithoutTransaction { db in
            let before = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            try db.execute(sql: "PRAGMA incremental_vacuum")
            let after = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            return before - after
        }
        try checkpointer.truncate()
        return freed
    }

    /// Pages on the free list: what ``vacuum()`` would return.
    public func freePages() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0 }
    }

    /// The size of the database file and its WAL, in bytes.
    public func fileBytes(path: String) -> Int {
        ["", "-wal"].reduce(0) { total, suffix in
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + suffix)
            return total + (attributes?[.size] as? Int ?? 0)
        }
    }
}

extension Store {
    /// Writes a consistent copy of the database to `path` with SQLite's backup API, while the
    /// store stays usable. The copy is as sealed as the original.
    public func snapshot(to path: String) throws {
        let copy = try DatabaseQueue(path: path)
        try pool.backup(to: copy)
        try copy.close()
    }
}
