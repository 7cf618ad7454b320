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

/// The control API's HTTP/1.1 connections: Hummingbird's, with its most frequent request (a
/// plain send, ``SendRoute``) answered where it is read.
///
/// The pipeline is Hummingbird's `HTTP1Channel` with two differences: NIO's pipelining
/// assistance is on (a connection's next request is held until the answer to the one before it
/// has been written, whoever writes it: the route here or Hummingbird's loop), and ``SendRoute``
/// sits between the connection's state (idle timeout, graceful shutdown) and Hummingbird's
/// `NIOAsyncChannel`.
struct ControlChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let sends: SendRoute.Target

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let operations = channel.pipeline.syncOperations
            try operations.configureHTTPServerPipeline(
                withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: .init())
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
/// kind every client sends (allowed by ``ControlAccessRule``, no `Connection: close`, a body of at
/// most ``maximumBodyBytes`` that ``SendRequest/init(plainJSON:)`` reads): the message goes
/// straight to the messenger's queue and its answer straight to the socket, without a task, the
/// router or a `Request`/`Response` per message (≈ 20 % of a sending node's CPU under load,
/// BENCHMARKS.md). Every other request, including every one this route would refuse, passes on
/// whole to Hummingbird's router, so what is refused, and how, stays the router's.
///
/// The answer is the router's, byte for byte but for the `Date` header's second: the same
/// status, headers and body for a sent message and for each error (tests compare them).
final class SendRoute: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    /// What the route needs from the node: its access rule and its messenger.
    struct Target: Sendable {
        let access: ControlAccessRule
        let messenger: Messenger
    }

    /// Bodies read here at most; a longer one passes on to the router (a 100-byte message's
    /// body is ≈ 140 bytes, and the longest text allowed, escaped or not, goes there too).
    static let maximumBodyBytes = 4_096

    private enum State {
        /// Between requests.
        case idle
        /// Reading a request this route may take.
        case reading(HTTPRequest, ByteBuffer?)
        /// Passing a request's parts on to the router.
        case passing
        /// Waiting for the messenger's answer (the pipelining assistance holds any next request).
        case answering
    }

    private let target: Target
    private let eventLoop: any EventLoop
    private var state = State.idle

    init(_ target: Target, eventLoop: any EventLoop) {
        self.target = target
        self.eventLoop = eventLoop
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            if takes(head) {
                state = .reading(head, nil)
            } else {
                state = .passing
                context.fireChannelRead(data)
            }
        case (.reading(let head, let body), .body(let more)):
            if (body?.readableBytes ?? 0) + more.readableBytes > Self.maximumBodyBytes {
                passOn(head, body, context: context)
                context.fireChannelRead(data)
                return
            }
            if var body {
                state = .idle  // keeps the buffer uniquely referenced while appending
                body.writeImmutableBuffer(more)
                state = .reading(head, body)
            } else {
                state = .reading(head, more)
            }
        case (.reading(let head, let body), .end):
            let request = body.flatMap { $0.withUnsafeReadableBytes(SendRequest.init(plainJSON:)) }
            guard let request else {
                passOn(head, body, context: context)
                context.fireChannelRead(data)
                state = .idle
                return
            }
            state = .answering
            let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
            target.messenger.send(request.text, to: request.peer) { [eventLoop] result in
                eventLoop.execute {
                    let (route, context) = loopBound.value
                    route.answer(result, context: context)
                }
            }
        case (.passing, .end):
            state = .idle
            context.fireChannelRead(data)
        case (.passing, _):
            context.fireChannelRead(data)
        default:
            // Parts out of order (the decoder never sends them): the router's loop refuses them.
            state = .passing
            context.fireChannelRead(data)
        }
    }

    /// A plain send request the node's access rule allows, to be answered by this route.
    private func takes(_ head: HTTPRequest) -> Bool {
        head.method == .post && head.path == "/api/v1/messages" && head.headerFields[.connection] != "close"
            && target.access.refusal(of: head) == nil
    }

    /// Hands a request read so far to the router after all.
    private func passOn(_ head: HTTPRequest, _ body: ByteBuffer?, context: ChannelHandlerContext) {
        state = .passing
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if let body { context.fireChannelRead(wrapInboundOut(.body(body))) }
    }

    private func answer(_ result: Result<StoredMessage, any Error>, context: ChannelHandlerContext) {
        state = .idle
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
    }

    /// The router's answer to a send that failed: the status `Messenger.mapping` gives a chat
    /// error with Hummingbird's JSON error body, or 500 without a body for anything else (as
    /// Hummingbird answers an error that is not an HTTP error).
    static func refusal(for error: any Error) -> (HTTPResponse.Status, String?, [UInt8]) {
        guard let refusal = Messenger.httpError(for: error), let message = refusal.body else {
            return (.internalServerError, nil, [])
        }
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
