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
    private let writer: NIOAsyncChannelOutboundWriter<LinkMessage>
    private let lastUse = Mutex(ContinuousClock.now)

    init(
        peer: LinkPeer, isInitiator: Bool, localPeer: PeerID, channel: any Channel, maxMessageBytes: Int,
        gate: SendGate, writer: NIOAsyncChannelOutboundWriter<LinkMessage>
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.gate = gate
        self.peer = peer
        self.isInitiator = isInitiator
        self.initiatorPeer = isInitiator ? localPeer : peer.peerID
        self.channel = channel
        self.writer = writer
    }

    /// Sends a message on `stream` (suspending while the socket takes nothing).
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum, ``LinkError/closed``
    ///   when the link is gone.
    public func send(_ body: Envelope.Body, on stream: StreamID) async throws {
        let bytes: [UInt8]
        do {
            bytes = try WireCodec.encode(Envelope(body), maxBytes: maxMessageBytes)
        } catch {
            throw LinkError.messageTooLarge
        }
        try await send(LinkMessage(stream: stream, bytes: bytes))
    }

    /// Queues an encoded message, waiting while the link's queue is full.
    /// - Throws: ``LinkError/closed`` when the link is gone.
    /// - Throws: ``LinkError/messageTooLarge`` over the link's maximum (nothing is queued).
    public func send(_ message: LinkMessage) async throws {
        guard message.bytes.count <= maxMessageBytes else { throw LinkError.messageTooLarge }
        touch()
        try await gate.enter(message.bytes.count)
        var gated = message
        gated.gated = true
        do {
            try await writer.write(gated)
        } catch {
            gate.leave(message.bytes.count)
            throw LinkError.closed
        }
    }

    /// Queues several encoded messages in order with one hand-over to the event loop (one
    /// wake-up instead of one per message), waiting while the link's queue is full.
    /// - Throws: as ``send(_:)-(LinkMessage)``; on failure, none or some leading part of
    ///   `messages` was queued.
    public func send(_ messages: [LinkMessage]) async throws {
        guard !messages.isEmpty else { return }
        guard messages.allSatisfy({ $0.bytes.count <= maxMessageBytes }) else { throw LinkError.messageTooLarge }
        touch()
        let total = messages.reduce(0) { $0 + $1.bytes.count }
        try await gate.enter(total)
        let gated = messages.map { message -> LinkMessage in
            var gated = message
            gated.gated = true
            return gated
        }
        do {
            try await writer.write(contentsOf: gated)
        } catch {
            gate.leave(total)
            throw LinkError.closed
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
