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
    private let lastUse = Mutex(ContinuousClock.now)

    init(
        peer: LinkPeer, isInitiator: Bool, localPeer: PeerID, channel: any Channel, maxMessageBytes: Int,
        gate: SendGate
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.gate = gate
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

    /// Queues an encoded message, waiting while the link's queue is full.
    /// - Throws: ``LinkError/closed`` when the link is gone.
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum (nothing is queued).
    public nonisolated(nonsending) func send(_ message: LinkMessage) async throws {
        guard message.count <= maxMessageBytes else { throw LinkError.messageTooLarge }
        touch()
        try await gate.enter(message.count)
        var gated = message
        gated.gated = true
        // A link that has closed meanwhile refuses it and lets its bytes out of the gate.
        channel.writeAndFlush(gated, promise: nil)
    }

    /// Queues several encoded messages in order with one hand-over to the event loop (one
    /// wake-up instead of one per message), waiting while the link's queue is full.
    /// - Throws: as ``send(_:)-(LinkMessage)``; nothing is queued then.
    public nonisolated(nonsending) func send(_ messages: [LinkMessage]) async throws {
        guard !messages.isEmpty else { return }
        guard messages.allSatisfy({ $0.count <= maxMessageBytes }) else { throw LinkError.messageTooLarge }
        touch()
        let total = messages.reduce(0) { $0 + $1.count }
        try await gate.enter(total)
        write(messages)
    }

    /// Hands messages the gate has counted in to the event loop, in order, with one flush.
    private func write(_ messages: [LinkMessage]) {
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
    /// order, and whether a task is handing them over.
    private struct Outlet {
        var pending: [LinkMessage] = []
        var bytes = 0
        var draining = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let outlet = Mutex(Outlet())
    /// The bytes ``enqueue(_:)-([LinkMessage])`` holds before it asks its caller to wait
    /// (``waitForRoom()``).
    public static let outletBytes = 1 << 20

    /// Queues messages to go out in order, after everything queued this way before, without
    /// waiting: straight to the event loop when nothing waits before them and the send gate has
    /// room, otherwise one task per link hands them over as ``send(_:)-([LinkMessage])`` does
    /// (through the send gate). For a caller that must not suspend (an actor that would
    /// otherwise wait for its turn again after each hand-over). If the link fails, what is still
    /// queued is dropped, as a failed ``send(_:)-([LinkMessage])`` would drop it.
    /// - Returns: whether there is room for more; when false, call ``waitForRoom()`` before
    ///   queueing more.
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum (nothing is queued).
    @discardableResult
    public func enqueue(_ messages: [LinkMessage]) throws -> Bool {
        guard messages.allSatisfy({ $0.count <= maxMessageBytes }) else { throw LinkError.messageTooLarge }
        guard !messages.isEmpty else { return hasRoom }
        let total = messages.reduce(0) { $0 + $1.count }
        let (start, room) = outlet.withLock { outlet -> (Bool, Bool) in
            // Nothing queued before them and room in the gate: straight to the event loop, with
            // no task to hand them over (one thread fewer woken per message). Handed over under
            // the lock, so a later call's messages go after them; only from off the loop, where
            // the hand-over runs nothing of the pipeline here.
            if !outlet.draining, !channel.eventLoop.inEventLoop, gate.tryEnter(total) {
                touch()
                write(messages)
                return (false, outlet.bytes < Self.outletBytes)
            }
            outlet.pending += messages
            outlet.bytes += total
            let start = !outlet.draining
            outlet.draining = true
            return (start, outlet.bytes < Self.outletBytes)
        }
        if start { Task { await self.drainOutlet() } }
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

    private func drainOutlet() async {
        while true {
            let batch = outlet.withLock { outlet -> [LinkMessage] in
                if outlet.pending.isEmpty { outlet.draining = false }
                defer { outlet.pending = [] }
                return outlet.pending
            }
            guard !batch.isEmpty else { return }
            var failed = false
            do {
                try await send(batch)
            } catch {
                failed = true
            }
            let sent = batch.reduce(0) { $0 + $1.count }
            let resumed = outlet.withLock { outlet -> [CheckedContinuation<Void, Never>] in
                outlet.bytes -= sent
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
