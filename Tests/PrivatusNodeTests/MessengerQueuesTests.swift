import Foundation
import Logging
import PrivatusCore
import PrivatusCrypto
import PrivatusStore
import PrivatusTesting
import PrivatusWire
import Synchronization
import Testing

@testable import PrivatusNet
@testable import PrivatusNode

/// The messenger's one loop over its two queues (``Messenger/runQueues()``), in process with a
/// real store: sends are committed while it runs, it outlives either queue's end alone, and it
/// ends once both have ended, in the order a stopping node ends them.
@Suite(.timeLimit(.minutes(1))) struct MessengerQueuesTests {
    let scratch: TemporaryDirectory
    let keys = IdentityKeys()
    let bobKey = IdentityKey()
    var bob: PeerID { bobKey.publicKey.peerID }

    init() throws {
        scratch = try TemporaryDirectory("privatus-messenger-queues")
    }

    /// Set once a task has ended.
    final class Ended: Sendable {
        let value = Atomic(false)
    }

    /// Waits for `task` at most `seconds`; whether it ended (one that does not end is left
    /// behind: the test fails instead of hanging).
    func ended(_ task: Task<Void, Never>, within seconds: Int) async -> Bool {
        let ended = Ended()
        Task {
            await task.value
            ended.value.store(true, ordering: .relaxed)
        }
        for _ in 0..<(seconds * 100) where !ended.value.load(ordering: .relaxed) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return ended.value.load(ordering: .relaxed)
    }

    /// A messenger on a new store with Bob as a contact (no link), its loop running.
    func running() async throws -> (store: Store, messenger: Messenger, loop: Task<Void, Never>) {
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: keys.databaseKey)
        let messenger = try Messenger(store: store, keys: keys, name: "alice", logger: Logger(label: "test"))
        _ = try await messenger.addContact(Invite(peerID: bob, addresses: []), name: "bob")
        return (store, messenger, Task { await messenger.runQueues() })
    }

    @Test func oneLoopCommitsSendsUntilBothQueuesHaveEnded() async throws {
        let (store, messenger, loop) = try await running()

        // Bob has no link: each message is committed and waits in the outbox, in order.
        let first = try await messenger.send("one", to: "bob")
        #expect(first.state == .queued)

        // The inbox closed (links are gone): sends are still taken.
        messenger.stopInbox()
        let second = try await messenger.send("two", to: "bob")
        #expect(second.state == .queued)
        #expect(try store.outboxCount() == 2)

        // Then the send queue: the loop ends, and a send is refused.
        messenger.stopOutgoing()
        await messenger.outgoingSettled()
        #expect(await ended(loop, within: 30), "both queues have ended")
        await #expect(throws: ChatError.stopping) { try await messenger.send("three", to: "bob") }
        #expect(try store.outboxCount() == 2)
    }

    @Test func afterTheSendQueueEndsTheInboxIsStillTakenUntilItEnds() async throws {
        let (store, messenger, loop) = try await running()
        let sent = try await messenger.send("one", to: "bob")

        // A stopping node ends its sends first, then closes its links, then its inbox: what
        // arrives meanwhile (here Bob's receipt) is still applied.
        messenger.stopOutgoing()
        await messenger.outgoingSettled()
        let peer = LinkPeer(peerID: bob, identity: bobKey.publicKey, handshakeHash: Data())
        await messenger.receive(
            InboundMessage(stream: .chat, body: .receipt(Receipt(messageIDs: [sent.id], state: .delivered))),
            from: peer, on: nil)
        var state = try store.message(id: sent.id)?.message.state
        for _ in 0..<1_000 where state != .delivered {
            try await Task.sleep(for: .milliseconds(10))
            state = try store.message(id: sent.id)?.message.state
        }
        #expect(state == .delivered)
        #expect(try store.outboxCount() == 0)

        messenger.stopInbox()
        #expect(await ended(loop, within: 30))
    }
}
