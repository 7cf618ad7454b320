import Foundation
import Synchronization

/// The store's share of the node's background scheduler: called on every tick, it deletes
/// disappearing messages on time whatever the load, and runs the heavier upkeep (returning free
/// pages, refreshing the planner's statistics) only when the store has been idle for a while
/// and not too recently. The node's scheduler (issue 6) owns the timer; this type owns the
/// policy, so the policy is tested without one.
public final class StoreMaintenance: Sendable {
    /// The policy's knobs.
    public struct Policy: Sendable {
        /// How often expired messages are looked for, busy or not.
        public var expiryInterval: Duration = .seconds(60)
        /// How long without a write counts as idle.
        public var idleAfter: Duration = .seconds(30)
        /// The least time between two idle-time upkeep runs.
        public var upkeepInterval: Duration = .seconds(3600)
        /// Free pages below which an incremental vacuum is not worth running.
        public var vacuumThresholdPages = 256

        public init() {}
    }

    /// What one tick did.
    public struct Report: Sendable, Hashable {
        /// Disappearing messages deleted.
        public var expiredMessages = 0
        /// Whether the idle-time upkeep ran.
        public var upkeep = false
        /// Pages returned to the file system.
        public var pagesFreed = 0

        public init(expiredMessages: Int = 0, upkeep: Bool = false, pagesFreed: Int = 0) {
            self.expiredMessages = expiredMessages
            self.upkeep = upkeep
            self.pagesFreed = pagesFreed
        }
    }

    private struct State {
        var lastExpiry: ContinuousClock.Instant?
        var lastUpkeep: ContinuousClock.Instant?
    }

    let store: Store
    let policy: Policy
    private let state = Mutex(State())

    public init(store: Store, policy: Policy = Policy()) {
        self.store = store
        self.policy = policy
    }

    /// One scheduler tick at `instant` (the scheduler's clock), with `now` the wall time in Unix
    /// milliseconds that message expiry is measured against.
    @discardableResult
    public func tick(at instant: ContinuousClock.Instant, now: UInt64) throws -> Report {
        var report = Report()
        let (expiryDue, upkeepDue) = state.withLock { state in
            let expiryDue = state.lastExpiry.map { instant - $0 >= policy.expiryInterval } ?? true
            let idle = store.lastWrite.map { instant - $0 >= policy.idleAfter } ?? true
            let upkeepDue = idle && (state.lastUpkeep.map { instant - $0 >= policy.upkeepInterval } ?? true)
            if expiryDue { state.lastExpiry = instant }
            if upkeepDue { state.lastUpkeep = instant }
            return (expiryDue, upkeepDue)
        }
        if expiryDue { report.expiredMessages = try store.deleteExpiredMessages(now: now) }
        if upkeepDue {
            report.upkeep = true
            if try store.freePages() >= policy.vacuumThresholdPages { report.pagesFreed = try store.vacuum() }
            try store.optimize()
        }
        return report
    }
}
