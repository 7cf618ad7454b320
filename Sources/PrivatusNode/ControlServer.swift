import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import PrivatusCore
import PrivatusStore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The control API's HTTP/1.1 connections: Hummingbird's `HTTP1Channel` pipeline (the same
/// decoder limits, the connection's state for idle timeout and graceful shutdown, the
/// `NIOAsyncChannel` its router's loop reads), with ``SendRoute`` between the state and the
/// router: the most frequent request, a plain send, is answered where it is read.
struct ControlChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let sends: SendRoute.Target

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // HTTP1Channel's defaults (80 KiB per field and for all of them, 1,000 fields).
            let decoder = HTTP1Channel.Configuration.DecoderConfiguration()
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = decoder.maxHeaderFieldSize
            limits.maxHeaderListSize = decoder.maxHeaderListSize
            limits.maxHeaderFieldCount = decoder.maxHeaderFieldCount
            let operations = channel.pipeline.syncOperations
            // No pipelining assistance, as in HTTP1Channel: the router's loop takes one request
            // after the other, and SendRoute keeps the answers in the requests' order.
            try operations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try operations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try operations.addHandler(HTTPConnectionStateHandler(logger: logger))
            try operations.addHandler(SendRoute(sends, eventLoop: channel.eventLoop))
            return try NIOAsyncChannel(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }

    /// The server for Hummingbird's `Application`.
    static func builder(sends: SendRoute.Target) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in ControlChannel(responder: responder, sends: sends) }
    }
}

/// Answers `POST /api/v1/messages` on the connection's event loop when the request is the plain
/// kind every client sends (allowed by ``ControlAccessRule``, no `Connection: close`, a body of
/// at most ``maximumBodyBytes`` that ``SendRequest/init(plainJSON:)`` reads) and no answer of
/// the router's is still owed on the connection: the message goes straight to the messenger's
/// queue and its answer straight to the socket, without a task, the router or a
/// `Request`/`Response` per message (≈ 20 % of a sending node's CPU under load, BENCHMARKS.md).
/// Every other request, including every one this route would refuse, passes on whole to
/// Hummingbird's router, so what is refused, and how, stays the router's.
///
/// The answer is the router's, byte for byte but for the `Date` header's second: the same
/// status, headers and body for a sent message and for each error (tests compare them).
/// Answers leave in the requests' order: while this route's answer is owed, whatever the client
/// sends next (requests, the end of its input, bytes the decoder refuses) waits here, and a
/// plain send read while the router still owes an answer goes to the router, behind it.
final class SendRoute: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What the route needs from the node: its access rule and a way to queue a message.
    struct Target: Sendable {
        let access: ControlAccessRule
        /// Queues `text` for the contact `peer` names; the answer takes the result, once.
        let send: @Sendable (_ text: String, _ peer: String, _ answer: @escaping SendQueue.Answer) -> Void
    }

    /// Bodies read here at most; a longer one passes on to the router (a 100-byte message's
    /// body is ≈ 140 bytes, and the longest text allowed, escaped or not, goes there too).
    static let maximumBodyBytes = 4_096
    /// What waits behind an owed answer at most before the connection stops being read.
    static let maximumHeld = 16

    private enum State {
        /// Between requests.
        case idle
        /// Reading a request this route may take.
        case reading(HTTPRequest, ByteBuffer?)
        /// Passing a request's parts on to the router.
        case passing
        /// This route's answer is owed.
        case answering
    }

    /// What arrived while this route's answer was owed.
    private enum Held {
        case part(HTTPRequestPart)
        case event(Any)
        case error(any Error)
    }

    private let target: Target
    private let eventLoop: any EventLoop
    private var state = State.idle
    /// The answers the router owes (requests passed on whose answers it has not finished
    /// writing), what each one is, oldest first.
    private enum Owed {
        case other
        /// To `GET /api/v1/events`, not begun.
        case eventsAsked
        /// The event stream, begun (`200`): it never ends while the client is there.
        case stream
    }
    private var owed = CircularBuffer<Owed>()
    private var held = CircularBuffer<Held>()
    /// A read asked for while too much was held.
    private var readDeferred = false

    init(_ target: Target, eventLoop: any EventLoop) {
        self.target = target
        self.eventLoop = eventLoop
    }

    /// Whether what arrives now waits: this route's answer is owed, or something already waits.
    private var holding: Bool {
        if case .answering = state { return true }
        return !held.isEmpty
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if holding {
            held.append(.part(part))
        } else {
            handle(part, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A watch's client never ends its input while it watches: it has gone. The connection
        // closes, and with it the watch, which frees its place at once (``ControlContext``)
        // instead of at the next event it would fail to write.
        if let event = event as? ChannelEvent, event == .inputClosed, owed.first == .stream {
            context.close(promise: nil)
            return
        }
        // The end of the client's input (half-closure) must not end the router's loop, and with
        // it the connection, before this route's answer is written.
        if holding {
            held.append(.event(event))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A request the decoder could not read after one whose answer is owed: the router
        // answers it (400, then closes), after this route's answer.
        if holding {
            held.append(.error(error))
        } else {
            context.fireErrorCaught(error)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            // A refused watch (401, 503…) is an ordinary answer: a client that ends its input
            // still gets it.
            if owed.first == .eventsAsked, head.status == .ok { owed[owed.startIndex] = .stream }
        case .body:
            break
        case .end:
            _ = owed.popFirst()
        }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        if held.count >= Self.maximumHeld {
            readDeferred = true
        } else {
            context.read()
        }
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let head)):
            if owed.isEmpty, takes(head) {
                state = .reading(head, nil)
            } else {
                pass(part, context: context)
            }
        case (.reading(let head, var body), .body(let more)):
            if (body?.readableBytes ?? 0) + more.readableBytes > Self.maximumBodyBytes {
                pass(head, body, then: part, context: context)
                return
            }
            state = .idle  // the buffer is referenced once while it grows
            if body == nil {
                body = more
            } else {
                body!.writeImmutableBuffer(more)
            }
            state = .reading(head, body)
        case (.reading(let head, let body), .end):
            guard let request = body.flatMap({ $0.withUnsafeReadableBytes(SendRequest.init(plainJSON:)) }) else {
                pass(head, body, then: part, context: context)
                state = .idle
                return
            }
            state = .answering
            let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
            target.send(request.text, request.peer) { [eventLoop] result in
                eventLoop.execute {
                    let (route, context) = loopBound.value
                    route.answer(result, context: context)
                }
            }
        case (.passing, .end):
            state = .idle
            context.fireChannelRead(wrapInboundOut(part))
        case (.passing, _):
            context.fireChannelRead(wrapInboundOut(part))
        default:
            // A part out of order (the decoder never sends one): the router's loop refuses it.
            context.fireChannelRead(wrapInboundOut(part))
        }
    }

    /// Passes a request's head on to the router; its other parts follow it.
    private func pass(_ head: HTTPRequestPart, context: ChannelHandlerContext) {
        state = .passing
        if case .head(let request) = head, request.method == .get, Self.isEvents(request.path) {
            owed.append(.eventsAsked)
        } else {
            owed.append(.other)
        }
        context.fireChannelRead(wrapInboundOut(head))
    }

    /// Hands a request read so far to the router after all: its head, the body read, `part`.
    private func pass(
        _ head: HTTPRequest, _ body: ByteBuffer?, then part: HTTPRequestPart, context: ChannelHandlerContext
    ) {
        pass(.head(head), context: context)
        if let body { context.fireChannelRead(wrapInboundOut(.body(body))) }
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// Whether `path` is the event stream's as the router matches it (empty segments skipped, the
    /// query ignored).
    static func isEvents(_ path: String?) -> Bool {
        guard let path = path?.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
        else { return false }
        return path.split(separator: "/").elementsEqual(["api", "v1", "events"])
    }

    /// A plain send request the node's access rule allows, to be answered by this route.
    private func takes(_ head: HTTPRequest) -> Bool {
        head.method == .post && head.path == "/api/v1/messages" && head.headerFields[.connection] != "close"
            && target.access.refusal(of: head) == nil
    }

    private func answer(_ result: Result<StoredMessage, any Error>, context: ChannelHandlerContext) {
        let status: HTTPResponse.Status
        let contentType: String?
        let body: [UInt8]
        switch result {
        case .success(let stored):
            status = .ok
            contentType = "application/json; charset=utf-8"
            body = SendResult(id: Hex.encode(stored.id), state: stored.state.name).json
        case .failure(let error):
            (status, contentType, body) = Self.refusal(for: error)
        }
        var fields = HTTPFields()
        if let contentType { fields[.contentType] = contentType }
        fields[.contentLength] = String(body.count)
        fields[.date] = HTTPDate.now
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(ByteBuffer(bytes: body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        // What waited goes on, in order, until this route owes an answer again; the router's
        // channel hands what it is given to its loop at the end of a read.
        state = .idle
        let released = !held.isEmpty
        while let next = held.popFirst() {
            switch next {
            case .part(let part): handle(part, context: context)
            case .event(let event): context.fireUserInboundEventTriggered(event)
            case .error(let error): context.fireErrorCaught(error)
            }
            if case .answering = state { break }
        }
        if released { context.fireChannelReadComplete() }
        if readDeferred, held.count < Self.maximumHeld {
            readDeferred = false
            context.read()
        }
    }

    /// The router's answer to a send that failed: the status `Messenger.httpError(for:)` gives
    /// a chat error with Hummingbird's JSON error body, or 500 without a body for anything else
    /// (as Hummingbird answers an error that is not an HTTP error).
    static func refusal(for error: any Error) -> (HTTPResponse.Status, String?, [UInt8]) {
        guard let refusal = Messenger.httpError(for: error) else { return (.internalServerError, nil, []) }
        guard let message = refusal.body else { return (refusal.status, nil, []) }
        struct Format: Encodable {
            struct Message: Encodable { let message: String }
            let error: Message
        }
        let body = (try? JSONEncoder().encode(Format(error: .init(message: message)))).map(Array.init) ?? []
        return (refusal.status, "application/json; charset=utf-8", body)
    }
}

/// The `Date` header's value (RFC 9110, 5.6.7, IMF-fixdate), made once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: time_t, text: String)>((0, ""))

    static var now: String {
        var seconds = time(nil)
        return cache.withLock { cache in
            if cache.second != seconds {
                var parts = tm()
                gmtime_r(&seconds, &parts)
                let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
                let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
                cache = (
                    seconds,
                    "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) "
                        + "\(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
                )
            }
            return cache.text
        }
    }
}
