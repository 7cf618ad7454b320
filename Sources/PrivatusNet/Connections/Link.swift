import NIOCore
import PrivatusCore
import PrivatusWire
import Synchronization

/// An established, authenticated link to one peer: send messages on its streams; what the peer
/// sends goes to the connection manager's handler.
public final class Link: Sendable {
    /// Who is at the other end.
    public let peer: LinkPeer
    /// Whether this node dialled.
    public let isInitiator: Bool
    /// The PeerID of the node that dialled (decides which of two crossing links is kept).
    let initiatorPeer: PeerID
    let channel: any Channel
    let maxMessageBytes: Int
    private let gate: SendGate
    /// What is sent waits until the commits made before it was queued are durable (nil: it
    /// never waits).
    private let durability: (any DurabilityBarrier)?
    private let lastUse = Mutex(ContinuousClock.now)

    init(
        peer: LinkPeer, isInitiator: Bool, localPeer: PeerID, channel: any Channel, maxMessageBytes: Int,
        gate: SendGate, durability: (any DurabilityBarrier)? = nil
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.gate = gate
        self.durability = durability
        self.peer = peer
        self.isInitiator = isInitiator
        self.initiatorPeer = isInitiator ? localPeer : peer.peerID
        self.channel = channel
    }

    /// Sends a message on `stream` (suspending while the link's queue is full).
    ///
    /// Runs on the caller's executor: called on the link's event loop (a handler of what the
    /// link received), the message is sealed and written before this returns; from elsewhere it
    /// is handed to the loop.
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum, ``LinkError/closed``
    ///   when the link is gone.
    public nonisolated(nonsending) func send(_ body: Envelope.Body, on stream: StreamID) async throws {
        let bytes: [UInt8]
        do {
            bytes = try WireCodec.encodeBehindFrameHeader(Envelope(body), maxBytes: maxMessageBytes)
        } catch {
            throw LinkError.messageTooLarge
        }
        try await send(LinkMessage(stream: stream, behindFrameHeader: bytes))
    }

    /// Queues an encoded message, waiting while the link's queue is full, and first for the
    /// commits made before the call to be durable.
    /// - Throws: ``LinkError/closed`` when the link is gone.
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum (nothing is queued).
    public nonisolated(nonsending) func send(_ message: LinkMessage) async throws {
        guard message.count <= maxMessageBytes else { throw LinkError.messageTooLarge }
        if let durability { await durability.durable(durability.mark()) }
        touch()
        try await gate.enter(message.count)
        var gated = message
        gated.gated = true
        // A link that has closed meanwhile refuses it and lets its bytes out of the gate.
        channel.writeAndFlush(gated, promise: nil)
    }

    /// Queues several encoded messages in order with one hand-over to the event loop (one
    /// wake-up instead of one per message), waiting while the link's queue is full, and first
    /// for the commits made before the call to be durable.
    /// - Throws: as ``send(_:)-(LinkMessage)``; nothing is queued then.
    public nonisolated(nonsending) func send(_ messages: [LinkMessage]) async throws {
        try await send(messages, after: durability?.mark())
    }

    /// ``send(_:)-([LinkMessage])`` once the commits up to `mark` are durable.
    private nonisolated(nonsending) func send(_ messages: [LinkMessage], after mark: UInt64?) async throws {
        guard !messages.isEmpty else { return }
        guard messages.allSatisfy({ $0.count <= maxMessageBytes }) else { throw LinkError.messageTooLarge }
        if let durability, let mark { await durability.durable(mark) }
        touch()
        let total = messages.reduce(0) { $0 + $1.count }
        try await gate.enter(total)
        handOver(messages)
    }

    /// Hands messages that passed the send gate to the event loop, with one hand-over (or none on
    /// the loop itself). A link that has closed meanwhile refuses them and lets their bytes out
    /// of the gate.
    private func handOver(_ messages: [LinkMessage]) {
        let gated = messages.map { message -> LinkMessage in
            var gated = message
            gated.gated = true
            return gated
        }
        let channel = self.channel
        let write: @Sendable () -> Void = {
            for message in gated { channel.write(message, promise: nil) }
            channel.flush()
        }
        if channel.eventLoop.inEventLoop { write() } else { channel.eventLoop.execute(write) }
    }

    // MARK: - Outlet

    /// Messages queued with ``enqueue(_:)-([LinkMessage])`` and not yet handed to the link, in
    /// order, in runs of those that wait for the same durability mark (marks grow along the
    /// queue), and whether a task is handing them over.
    private struct Outlet {
        var pending: [(mark: UInt64, messages: [LinkMessage])] = []
        var bytes = 0
        var draining = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let outlet = Mutex(Outlet())
    /// The bytes ``enqueue(_:)-([LinkMessage])`` holds before it asks its caller to wait
    /// (``waitForRoom()``).
    public static let outletBytes = 1 << 20

    /// Queues messages to go out in order, after everything queued this way before, without
    /// waiting, once the commits made before this call are durable. For a caller that must not
    /// suspend (an actor that would otherwise wait for its turn again after each hand-over).
    /// What may go (durable, and the send gate has room) is handed to the event loop at once, on
    /// the caller's thread; what waits for a sync is handed over by the thread that ran it, and
    /// what waits for room by a task of the link's. If the link fails, what is still queued is
    /// dropped, as a failed ``send(_:)-([LinkMessage])`` would drop it.
    /// - Returns: whether there is room for more; when false, call ``waitForRoom()`` before
    ///   queueing more.
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum (nothing is queued).
    @discardableResult
    public func enqueue(_ messages: [LinkMessage]) throws -> Bool {
        guard messages.allSatisfy({ $0.count <= maxMessageBytes }) else { throw LinkError.messageTooLarge }
        guard !messages.isEmpty else { return hasRoom }
        let total = messages.reduce(0) { $0 + $1.count }
        let (start, mark, room) = outlet.withLock { outlet -> (Bool, UInt64, Bool) in
            // Taken under the lock: the marks grow along the queue.
            let mark = durability?.mark() ?? 0
            if let last = outlet.pending.last, last.mark == mark {
                outlet.pending[outlet.pending.count - 1].messages += messages
            } else {
                outlet.pending.append((mark, messages))
            }
            outlet.bytes += total
            let start = !outlet.draining
            outlet.draining = true
            return (start, mark, outlet.bytes < Self.outletBytes)
        }
        if start { pumpOutlet() }
        return room
    }

    /// Queues a message on `stream` as ``enqueue(_:)-([LinkMessage])`` does.
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum.
    @discardableResult
    public func enqueue(_ body: Envelope.Body, on stream: StreamID) throws -> Bool {
        let bytes: [UInt8]
        do {
            bytes = try WireCodec.encodeBehindFrameHeader(Envelope(body), maxBytes: maxMessageBytes)
        } catch {
            throw LinkError.messageTooLarge
        }
        return try enqueue([LinkMessage(stream: stream, behindFrameHeader: bytes)])
    }

    /// Whether ``enqueue(_:)-([LinkMessage])`` holds less than ``outletBytes``.
    public var hasRoom: Bool { outlet.withLock { $0.bytes < Self.outletBytes } }

    /// Waits until the messages queued with ``enqueue(_:)-([LinkMessage])`` are under
    /// ``outletBytes`` (or the link failed).
    public func waitForRoom() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = outlet.withLock { outlet -> Bool in
                guard outlet.bytes >= Self.outletBytes else { return true }
                outlet.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// What ``handOverReady()`` left.
    private enum Leftover {
        /// Nothing: the queue is empty and nobody drains it.
        case none
        /// The first run waits for the commits up to this mark to be durable.
        case sync(UInt64)
        /// The send gate has no room for the first run.
        case room
    }

    /// Drains the outlet for whoever set `draining`: hands over what may go now, then waits for
    /// the sync (the action runs on the barrier's thread and hands over from there) or for room
    /// (a task).
    private func pumpOutlet() {
        switch handOverReady() {
        case .none:
            break
        case .sync(let mark):
            durability?.whenDurable(mark) { self.pumpOutlet() }
        case .room:
            Task { await self.drainOutlet() }
        }
    }

    /// Hands the queued runs that may go over to the event loop without suspending: those whose
    /// mark is durable, as long as the send gate has room, in one hand-over per look.
    private func handOverReady() -> Leftover {
        enum Step {
            case done, sync(UInt64), room
            case closed([CheckedContinuation<Void, Never>])
            case batch([LinkMessage], Int)
        }
        while true {
            let step = outlet.withLock { outlet -> Step in
                guard let first = outlet.pending.first else {
                    outlet.draining = false
                    return .done
                }
                var taken = 0
                while taken < outlet.pending.count, durability?.isDurable(outlet.pending[taken].mark) ?? true {
                    taken += 1
                }
                guard taken > 0 else { return .sync(first.mark) }
                let batch = taken == 1 ? first.messages : outlet.pending.prefix(taken).flatMap(\.messages)
                let bytes = batch.reduce(0) { $0 + $1.count }
                do {
                    guard try gate.admitNow(bytes) else { return .room }
                } catch {
                    // Closed: what is queued is dropped, and nobody waits for room forever.
                    outlet.pending = []
                    outlet.bytes = 0
                    outlet.draining = false
                    defer { outlet.waiting = [] }
                    return .closed(outlet.waiting)
                }
                outlet.pending.removeFirst(taken)
                return .batch(batch, bytes)
            }
            switch step {
            case .done: return .none
            case .sync(let mark): return .sync(mark)
            case .room: return .room
            case .closed(let waiting):
                for continuation in waiting { continuation.resume() }
                return .none
            case .batch(let batch, let bytes):
                touch()
                handOver(batch)
                left(bytes, failed: false)
            }
        }
    }

    /// Counts `bytes` out of the outlet (handed over, or dropped when `failed`) and lets those
    /// waiting for room go on when there is.
    private func left(_ bytes: Int, failed: Bool) {
        let resumed = outlet.withLock { outlet -> [CheckedContinuation<Void, Never>] in
            outlet.bytes -= bytes
            if failed {
                outlet.pending = []
                outlet.bytes = 0
            }
            guard outlet.bytes < Self.outletBytes else { return [] }
            defer { outlet.waiting = [] }
            return outlet.waiting
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Drains the outlet while the send gate is full: the first run waits for room, then
    /// whatever may go is handed over at once.
    private func drainOutlet() async {
        while true {
            switch handOverReady() {
            case .none:
                return
            case .sync(let mark):
                await durability?.durable(mark)
                continue
            case .room:
                break
            }
            let run = outlet.withLock { outlet -> (mark: UInt64, messages: [LinkMessage])? in
                outlet.pending.isEmpty ? nil : outlet.pending.removeFirst()
            }
            guard let run else { continue }
            var failed = false
            do {
                try await send(run.messages, after: run.mark)
            } catch {
                failed = true
            }
            // After a failure the queue is empty (or the gate closed): the next look ends the
            // drain, unless something was queued meanwhile.
            left(run.messages.reduce(0) { $0 + $1.count }, failed: failed)
        }
    }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }

    /// When the link last carried a message either way.
    public var lastUsed: ContinuousClock.Instant { lastUse.withLock { $0 } }

    func touch() {
        lastUse.withLock { $0 = .now }
    }

    /// Waits until every queued message has been handed to the socket (or the link closed).
    func drain() async {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.triggerUserOutboundEvent(LinkDrain(), promise: promise)
        try? await promise.futureResult.get()
    }

    /// Closes the connection now.
    public func close() {
        channel.close(promise: nil)
    }
}

/// The outbound user event asking the multiplexer to complete when its queues are empty.
struct LinkDrain: Sendable {}
