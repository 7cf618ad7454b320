import Foundation
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusWire
import Testing

@testable import PrivatusNet

/// A link with a durability barrier lets nothing out before the commits made before it was
/// queued are durable (DESIGN.md, "Storage"), over real sockets.
@Suite(.serialized) struct LinkDurabilityTests {
    let group = MultiThreadedEventLoopGroup.singleton

    func text(of message: InboundMessage) -> String? {
        guard case .chatMessage(let chat) = message.body else { return nil }
        return String(decoding: chat.sealed, as: UTF8.self)
    }

    /// Waits until `barrier` holds `count` waiting actions (fails after a bounded number of
    /// looks: a guard against hangs, not a timing assertion).
    func waitUntil(_ barrier: HandSyncedBarrier, holds count: Int) async throws {
        for _ in 0..<3_000 where barrier.waitingCount != count {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(barrier.waitingCount == count)
    }

    @Test func messagesWaitForTheCommitsBeforeThemAndGoInTheirOrderOnceDurable() async throws {
        let barrier = HandSyncedBarrier()
        let alice = TestLinkNode(group: group, durability: barrier)
        let bob = TestLinkNode(group: group)
        let address = try await bob.manager.listen(host: "127.0.0.1", port: 0)
        let link = try await alice.manager.connect(to: bob.peerID, at: address)

        // Nothing committed yet: it goes at once.
        try link.enqueue(chat("before any commit"), on: .chat)
        #expect(text(of: try await bob.inbox.next().1) == "before any commit")

        barrier.commit()  // mark 1
        try link.enqueue(chat("after commit 1, queued"), on: .chat)
        let sent = Task { try await link.send(chat: "after commit 1, sent") }
        try await waitUntil(barrier, holds: 2)
        barrier.commit()  // mark 2
        try link.enqueue(chat("after commit 2"), on: .chat)
        #expect(await bob.inbox.count == 0, "both wait for commit 1, the last for commit 2")

        barrier.sync(upTo: 1)
        try await sent.value
        var arrived = Set<String>()
        for _ in 0..<2 { arrived.insert(text(of: try await bob.inbox.next().1) ?? "") }
        #expect(arrived == ["after commit 1, queued", "after commit 1, sent"])
        // The message queued after commit 2 is still held: its run waits for that mark.
        try await waitUntil(barrier, holds: 1)
        #expect(await bob.inbox.count == 0)

        barrier.sync(upTo: 2)
        #expect(text(of: try await bob.inbox.next().1) == "after commit 2")
        // Durable already: no wait.
        try link.enqueue(chat("durable"), on: .chat)
        #expect(text(of: try await bob.inbox.next().1) == "durable")
        await alice.manager.shutdown()
        await bob.manager.shutdown()
    }
}
