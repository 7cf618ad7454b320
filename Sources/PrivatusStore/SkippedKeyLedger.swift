import Foundation
import Synchronization

/// The skipped message keys held by each contact's stored sessions, so that one budget bounds
/// them over the whole node (a peer that makes us skip keys costs memory and disk in every
/// session it has; many peers together must not add up without bound).
///
/// Filled once from the stored sessions on first use, then kept in step by every write of
/// sessions, inside the writer's transaction (so in commit order). A write that fails drops
/// the ledger; the next use reloads it from the database.
final class SkippedKeyLedger: Sendable {
    private let held = Mutex<[Data: Int]?>(nil)

    /// The keys held by every contact but `peer`, loading the ledger with `load` if needed.
    /// `load` must call ``install(_:)`` from inside the writer's transaction, so that no session
    /// write can commit between its reading and its installing.
    func heldByOthers(than peer: Data, load: () throws -> Void) throws -> Int {
        if let total = held.withLock({ ledger in ledger.map { total(of: $0, excluding: peer) } }) { return total }
        try load()
        return held.withLock { ledger in ledger.map { total(of: $0, excluding: peer) } } ?? 0
    }

    /// Installs a ledger read inside the writer's transaction (unless one is there already).
    func install(_ loaded: [Data: Int]) {
        held.withLock { ledger in
            if ledger == nil { ledger = loaded }
        }
    }

    /// Records what `peer`'s sessions hold after a write (ignored until the ledger is loaded).
    func record(_ count: Int, for peer: Data) {
        held.withLock { ledger in ledger?[peer] = count }
    }

    /// Forgets everything: the next use reloads from the database.
    func reset() {
        held.withLock { $0 = nil }
    }

    private func total(of ledger: [Data: Int], excluding peer: Data) -> Int {
        ledger.reduce(0) { $0 + ($1.key == peer ? 0 : $1.value) }
    }
}
