import NIOCore
import Synchronization

/// The messages a link has received and its reader has not taken yet: the hand-over from the
/// link's event loop to the code that handles them.
///
/// ``LinkInboundBridge``, the last handler of the pipeline, puts each ``InboundMessage`` in; the
/// reader takes them with ``next()``. It holds at most a few: once ``highWatermark`` wait, the
/// bridge stops asking the socket for more (back-pressure reaches the peer through TCP) until
/// the reader has taken them down to ``lowWatermark``.
///
/// ``next()`` runs on its caller's executor (`nonisolated(nonsending)`): a reader that prefers the
/// link's event loop (``EventLoopTaskExecutor``) is resumed on that loop, with no thread hop between
/// the socket and the handler. (NIO's `NIOAsyncChannel` hands every message to Swift's global
/// executor.)
final class LinkInbound: Sendable {
    static let highWatermark = 4
    static let lowWatermark = 2

    private struct State {
        var messages = CircularBuffer<InboundMessage>(initialCapacity: 4)
        var waiter: UnsafeContinuation<InboundMessage?, any Error>?
        /// Set once the link has closed: `.success` for a clean end, `.failure` for a failure.
        var end: Result<Void, any Error>?
        /// The bridge holds back the channel's reads.
        var paused = false
        /// A read was held back while paused.
        var readHeld = false
    }

    private let state = Mutex(State())
    private let channel: any Channel

    init(channel: any Channel) {
        self.channel = channel
    }

    /// The next message, in order; nil once the link has closed cleanly and every message was
    /// taken.
    /// - Throws: the error that closed the link, once every message before it was taken.
    nonisolated(nonsending) func next() async throws -> InboundMessage? {
        enum Now {
            case message(InboundMessage, resumeReading: Bool)
            case end(Result<Void, any Error>)
            case wait
        }
        let now: Now = state.withLock { state in
            if let message = state.messages.popFirst() {
                return .message(message, resumeReading: Self.resumesReading(&state))
            }
            if let end = state.end { return .end(end) }
            return .wait
        }
        switch now {
        case .message(let message, let resumeReading):
            if resumeReading { channel.read() }
            return message
        case .end(let end):
            try end.get()
            return nil
        case .wait:
            return try await withUnsafeThrowingContinuation { continuation in
                let ready: (Result<InboundMessage?, any Error>, resumeReading: Bool)? = state.withLock { state in
                    if let message = state.messages.popFirst() {
                        return (.success(message), Self.resumesReading(&state))
                    }
                    if let end = state.end { return (end.map { nil }, false) }
                    state.waiter = continuation
                    return nil
                }
                guard let ready else { return }
                if ready.resumeReading { channel.read() }
                continuation.resume(with: ready.0)
            }
        }
    }

    /// After a message was taken: whether the held-back read is to be let through now.
    private static func resumesReading(_ state: inout State) -> Bool {
        guard state.paused, state.messages.count <= lowWatermark else { return false }
        state.paused = false
        defer { state.readHeld = false }
        return state.readHeld
    }

    // MARK: - The event loop's side

    /// A message received (on the loop): to the waiting reader, or queued.
    fileprivate func receive(_ message: InboundMessage) {
        let waiter: UnsafeContinuation<InboundMessage?, any Error>? = state.withLock { state in
            if let waiter = state.waiter.take() { return waiter }
            state.messages.append(message)
            if state.messages.count >= Self.highWatermark { state.paused = true }
            return nil
        }
        waiter?.resume(returning: message)
    }

    /// Whether a read may go to the socket now; if not, it is held until the reader catches up.
    fileprivate func mayRead() -> Bool {
        state.withLock { state in
            guard state.paused else { return true }
            state.readHeld = true
            return false
        }
    }

    /// The link has closed (`error` nil: cleanly): the reader gets what is left, then the end.
    fileprivate func finish(_ error: (any Error)?) {
        let waiter: UnsafeContinuation<InboundMessage?, any Error>? = state.withLock { state in
            guard state.end == nil else { return nil }
            state.end = error.map { .failure($0) } ?? .success(())
            return state.waiter.take()
        }
        guard let waiter else { return }
        if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
    }
}

/// The last handler of a link's pipeline: passes received messages to the link's
/// ``LinkInbound`` and holds the channel's reads back while it is full. Writes pass through.
final class LinkInboundBridge: ChannelDuplexHandler {
    typealias InboundIn = InboundMessage
    typealias OutboundIn = LinkMessage
    typealias OutboundOut = LinkMessage

    let inbound: LinkInbound

    init(inbound: LinkInbound) {
        self.inbound = inbound
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbound.receive(Self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {}

    func read(context: ChannelHandlerContext) {
        if inbound.mayRead() { context.read() }
    }

    /// The link failed (``LinkHandler`` reports why before it closes the channel): the reader
    /// gets the messages before the failure, then the error.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inbound.finish(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbound.finish(nil)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        inbound.finish(LinkError.closed)
    }
}

/// An event loop as a Swift task executor. A link's reader runs with its link's loop as its
/// preference (``ConnectionManager``), so that its nonisolated code, the handler it calls, and
/// every resumption of the reader after ``LinkInbound/next()`` waited, run on the loop that
/// received the message, with no thread woken in between. The node's event streams (`watch`)
/// run on a loop too, so that they keep up while the cooperative pool is busy with requests.
/// What runs on it must not block.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let loop: any EventLoop

    public init(_ loop: any EventLoop) {
        self.loop = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
