import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Persistent HTTP/1.1 connections to the control API (keep-alive), for a client that makes many
/// requests, as a browser does: a request takes an idle connection or opens one, and gives it back
/// once its answer has been read whole. A connection carries one request at a time (no
/// pipelining); at most ``maximumIdle`` wait idle, the rest close.
public final class ControlConnections: Sendable {
    /// Idle connections kept at most, unless the client asks for more.
    public static let defaultMaximumIdle = 64

    let host: String
    let port: Int
    /// Idle connections kept at most: a client that makes up to this many requests at once
    /// reuses its connections instead of closing and opening them.
    let maximumIdle: Int
    private let idle = Mutex<[any Channel]>([])

    init(host: String, port: Int, maximumIdle: Int = defaultMaximumIdle) {
        self.host = host
        self.port = port
        self.maximumIdle = maximumIdle
    }

    deinit {
        for channel in idle.withLock({ $0 }) { channel.close(promise: nil) }
    }

    /// Sends one request (`head` already names `Connection: keep-alive` or nothing) and reads its
    /// answer. A reused connection that the node had closed while idle is replaced once, before
    /// anything is written to it.
    func exchange(_ head: HTTPRequestHead, body: [UInt8]) async throws -> (status: Int, body: [UInt8]) {
        var channel: (any Channel)?
        while channel == nil, let candidate = idle.withLock({ $0.popLast() }) {
            if candidate.isActive { channel = candidate } else { candidate.close(promise: nil) }
        }
        let connection: any Channel
        if let channel {
            connection = channel
        } else {
            connection = try await connect()
        }
        let promise = connection.eventLoop.makePromise(of: ControlResponse.self)
        connection.writeAndFlush(ControlRequest(head: head, body: body, answer: promise), promise: nil)
        let response: ControlResponse
        do {
            response = try await promise.futureResult.get()
        } catch {
            connection.close(promise: nil)
            throw error
        }
        if response.keepAlive, connection.isActive {
            let kept = idle.withLock { idle -> Bool in
                guard idle.count < self.maximumIdle else { return false }
                idle.append(connection)
                return true
            }
            if !kept { connection.close(promise: nil) }
        } else {
            connection.close(promise: nil)
        }
        return (response.status, response.body)
    }

    private func connect() async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ControlClientHandler())
                }
            }
            .connect(host: host, port: port).get()
    }
}

struct ControlRequest {
    let head: HTTPRequestHead
    let body: [UInt8]
    let answer: EventLoopPromise<ControlResponse>
}

struct ControlResponse: Sendable {
    var status: Int
    var body: [UInt8]
    var keepAlive: Bool
}

/// Writes one request at a time and completes its promise with the whole answer (body bounded
/// by ``ControlClient/maximumResponseBytes``); a connection that closes or fails first fails it.
final class ControlClientHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = ControlRequest
    typealias OutboundOut = HTTPClientRequestPart

    private var waiting: EventLoopPromise<ControlResponse>?
    private var response: ControlResponse?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        guard waiting == nil else {
            request.answer.fail(ControlClientError.badResponse)
            return
        }
        waiting = request.answer
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if !request.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: request.body)))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            response = ControlResponse(status: Int(head.status.code), body: [], keepAlive: head.isKeepAlive)
        case .body(let buffer):
            guard var current = response,
                current.body.count + buffer.readableBytes <= ControlClient.maximumResponseBytes
            else {
                fail(ControlClientError.badResponse, context: context)
                return
            }
            response = nil  // keeps the body's storage uniquely referenced while appending
            current.body += buffer.readableBytesView
            response = current
        case .end:
            guard let done = response.take(), let answer = waiting.take() else {
                fail(ControlClientError.badResponse, context: context)
                return
            }
            answer.succeed(done)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiting.take()?.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        waiting.take()?.fail(error)
        response = nil
        context.close(promise: nil)
    }
}
