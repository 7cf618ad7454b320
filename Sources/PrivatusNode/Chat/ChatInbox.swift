import PrivatusCore
import PrivatusNet
import PrivatusWire
import Synchronization

/// Chat messages (and the receipts that follow them on the chat stream) received on links,
/// waiting for the messenger, which decrypts and commits the messages in batches (one
/// transaction, one fsync and one receipt for all that arrived while the previous batch was
/// being committed) and handles receipts in their place.
///
/// Links hand messages in without waiting for the messenger, so they keep reading while a batch
/// is committed. Bounds: ``capacity`` items and ``capacityBytes`` in all, ``perPeer`` items from
/// one peer; past them that link's handler waits (and the link stops reading: back-pressure
/// reaches the peer through TCP), other peers' links go on. Each peer's order is kept.
final class ChatInbox: Sendable {
    struct Item: Sendable {
        let body: Envelope.Body
        let peer: LinkPeer
        let link: Link?

        var bytes: Int {
            switch body {
            case .chatMessage(let chat): chat.sealed.count + 64
            default: 64
            }
        }
    }

    static let capacity = 1_024
    static let capacityBytes = 8 << 20
    static let perPeer = 256

    private struct State {
        var items: [Item] = []
        var bytes = 0
        var byPeer: [PeerID: Int] = [:]
        /// Handlers that found no room, with what they bring, in arrival order.
        var blocked: [(item: Item, resume: CheckedContinuation<Void, Never>)] = []
        var closed = false

        func hasRoom(for item: Item) -> Bool {
            items.count < ChatInbox.capacity && (items.isEmpty || bytes + item.bytes <= ChatInbox.capacityBytes)
                && byPeer[item.peer.peerID, default: 0] < ChatInbox.perPeer
        }

        mutating func add(_ item: Item) {
            items.append(item)
            bytes += item.bytes
            byPeer[item.peer.peerID, default: 0] += 1
        }
    }

    private let state = Mutex(State())
    /// Told of every arrival, and of the end: wakes the messenger's loop (``Messenger/runQueues()``).
    private let wake: AsyncStream<Void>.Continuation

    init(wake: AsyncStream<Void>.Continuation) {
        self.wake = wake
    }

    /// Adds a message, waiting while there is no room for it (returns at once, dropping it,
    /// once the inbox is closed: an unacknowledged message is sent again by its sender).
    nonisolated(nonsending) func put(_ item: Item) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = state.withLock { state -> Bool in
                if state.closed { return true }
                // Behind a blocked item of the same peer, never ahead of it.
                let peerBlocked = state.blocked.contains { $0.item.peer.peerID == item.peer.peerID }
                guard !peerBlocked, state.hasRoom(for: item) else {
                    state.blocked.append((item, continuation))
                    return false
                }
                state.add(item)
                return true
            }
            if accepted { continuation.resume() }
            wake.yield()
        }
    }

    /// Takes up to `limit` items, oldest first, and lets blocked handlers in as room allows
    /// (each peer's in order).
    func take(_ limit: Int) -> [Item] {
        let (batch, admitted) = state.withLock { state -> ([Item], [CheckedContinuation<Void, Never>]) in
            let batch = Array(state.items.prefix(limit))
            state.items.removeFirst(batch.count)
            for item in batch {
                state.bytes -= item.bytes
                state.byPeer[item.peer.peerID, default: 1] -= 1
                if state.byPeer[item.peer.peerID] == 0 { state.byPeer[item.peer.peerID] = nil }
            }
            var admitted: [CheckedContinuation<Void, Never>] = []
            var stillBlocked: [(item: Item, resume: CheckedContinuation<Void, Never>)] = []
            var skippedPeers = Set<PeerID>()
            for waiting in state.blocked {
                let peer = waiting.item.peer.peerID
                if !skippedPeers.contains(peer), state.hasRoom(for: waiting.item) {
                    state.add(waiting.item)
                    admitted.append(waiting.resume)
                } else {
                    skippedPeers.insert(peer)
                    stillBlocked.append(waiting)
                }
            }
            state.blocked = stillBlocked
            return (batch, admitted)
        }
        for continuation in admitted { continuation.resume() }
        if !admitted.isEmpty {
            wake.yield()
        }
        return batch
    }

    /// Whether ``finish()`` has been called.
    var isFinished: Bool { state.withLock { $0.closed } }

    /// Whether items wait to be taken (blocked handlers' among them).
    var hasWaiting: Bool { state.withLock { !$0.items.isEmpty || !$0.blocked.isEmpty } }

    /// Closes the inbox (the node is stopping): blocked handlers return, their messages dropped
    /// unacknowledged, and ``Messenger/runQueues()`` ends once it has taken what is left (and the send
    /// queue is finished too).
    func finish() {
        let blocked = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            defer { state.blocked.removeAll() }
            return state.blocked.map(\.resume)
        }
        for continuation in blocked { continuation.resume() }
        wake.yield()
    }
}
