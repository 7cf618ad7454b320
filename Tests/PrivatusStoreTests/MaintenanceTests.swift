import Crypto
import Foundation
import PrivatusCore
import PrivatusStore
import PrivatusTesting
import Testing

@Suite struct MaintenanceTests {
    @Test func expiryRunsOnEveryDueTickAndUpkeepOnlyWhenIdle() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let now: UInt64 = 1_800_000_000_000
        let alice = PeerID(identityPublicKey: [1])
        let bob = PeerID(identityPublicKey: [2])
        func message(_ peer: PeerID, _ body: String, expiresAt: UInt64? = nil) -> NewMessage {
            NewMessage(
                peer: peer, direction: .received, state: .delivered, sender: peer, sentAt: 1, body: body,
                expiresAt: expiresAt)
        }
        try store.append([message(alice, "vanishing", expiresAt: now - 1), message(alice, "staying")])
        var policy = StoreMaintenance.Policy()
        policy.vacuumThresholdPages = 1
        let maintenance = StoreMaintenance(store: store, policy: policy)
        let written = try #require(store.lastWrite)

        // Busy (just written): expiry runs, upkeep waits.
        var report = try maintenance.tick(at: written, now: now)
        #expect(report == StoreMaintenance.Report(expiredMessages: 1, upkeep: false, pagesFreed: 0))
        #expect(try store.latestMessages(with: alice).map(\.body) == ["staying"])

        // A conversation's worth of pages freed, then the store goes quiet.
        let long = String(repeating: "padding words ", count: 400)
        try store.append((0..<200).map { message(bob, "\($0) \(long)") })
        try store.deleteConversation(with: bob)
        #expect(try store.freePages() > 0)
        let quiet = try #require(store.lastWrite)
        report = try maintenance.tick(at: quiet + .seconds(10), now: now)
        #expect(report == StoreMaintenance.Report(), "not idle yet, and expiry ran under a minute ago")
        report = try maintenance.tick(at: quiet + .seconds(31), now: now)
        #expect(report.upkeep && report.pagesFreed > 0)
        #expect(try store.freePages() == 0)

        // Expiry keeps its minute; upkeep its hour.
        try store.append([message(alice, "later vanishing", expiresAt: now + 1)])
        let last = try #require(store.lastWrite)
        report = try maintenance.tick(at: last + .seconds(90), now: now + 1)
        #expect(report == StoreMaintenance.Report(expiredMessages: 1, upkeep: false, pagesFreed: 0))
        report = try maintenance.tick(at: last + .seconds(3700), now: now + 1)
        #expect(report.upkeep && report.pagesFreed == 0)
        #expect(try store.check().isEmpty)
    }
}
