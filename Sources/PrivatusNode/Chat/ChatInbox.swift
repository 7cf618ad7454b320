import PrivatusNet
import PrivatusWire
import Synchronization

/// Chat messages received on links, waiting for the messenger to decrypt and commit them in
/// batches (one transaction, one fsync and one receipt for all that arrived while the previous
/// batch was being committed).
///
/// Links hand messages in without waiting for the messenger, so they keep reading while a batch
/// is committed; past ``capacity`` waiting messages a link's handler waits (and the link stops
/// reading: back-pressure reaches the peer through TCP). Order is kept.
final class ChatInbox: Sendable {
    struct Item: Sendable {
        let chat: ChatMessage
        let peer: LinkPeer
        let link: Link?
    }

    static let capacity = 1_024

    private struct State {
        var items: [Item] = []
        /// Handlers that found the inbox full, with what they bring, in arrival order.
        var blocked: [(item: Item, resume: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())
    /// One element per arrival: wakes the messenger's drain loop.
    let arrivals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (arrivals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Adds a message, waiting while the inbox is full.
    func put(_ item: Item) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = state.withLock { state -> Bool in
                guard state.items.count < Self.capacity, state.blocked.isEmpty else {
                    state.blocked.append((item, continuation))
                    return false
                }
                state.items.append(item)
                return true
            }
            if accepted { continuation.resume() }
            signal.yield()
        }
    }

    /// Takes up to `limit` messages, oldest first, and lets blocked handlers in.
    func take(_ limit: Int) -> [Item] {
        let (batch, admitted) = state.withLock { state -> ([Item], [CheckedContinuation<Void, Never>]) in
            let batch = Array(state.items.prefix(limit))
            state.items.removeFirst(batch.count)
            var admitted: [CheckedContinuation<Void, Never>] = []
            while state.items.count < Self.capacity, !state.blocked.isEmpty {
                let next = state.blocked.removeFirst()
                state.items.append(next.item)
                admitted.append(next.resume)
            }
            return (batch, admitted)
        }
        for continuation in admitted { continuation.resume() }
        if !admitted.isEmpty { signal.yield() }
        return batch
    }

    /// Ends the drain loop (the node is stopping).
    func finish() { signal.finish() }
}
