import Foundation
import GRDB

extension Store {
    /// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`: the problems found, empty when
    /// the database is sound.
    public func check() throws -> [String] {
        try pool.read { db in
            var problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
            let violations = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check")
            problems += violations.map { "foreign key violation in \($0["table"] as String? ?? "?")" }
            return problems
        }
    }

    /// How many messages the database holds.
    public func messageCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM messages") ?? 0 }
    }
}
