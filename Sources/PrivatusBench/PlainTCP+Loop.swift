import NIOCore
import NIOPosix

/// The floor of `bench transport`'s round trip: plain TCP with both ends as channel handlers on
/// their event loops (`plain_loop_rtt_*`). No task and no thread hop on either side: each message
/// costs one socket write, the other process's loop woken from `epoll_wait`, and one read. A
/// link's round trip (whose reader and handler run on its loop too) compares with this for the
/// cost of its own layers, and with ``PlainTCP``'s `NIOAsyncChannel` round trip for what an
/// application written with NIO's async API pays.
extension PlainTCP {
    /// Echoes every byte it reads, on the loop.
    final class LoopEcho: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.write(data, promise: nil)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }
    }

    /// Listens on `host` (an ephemeral port) with ``LoopEcho`` on every connection. Returns the port.
    static func listenLoopEcho(group: any EventLoopGroup, host: String) async throws -> Int {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(LoopEcho()) }
            }
            .bind(host: host, port: 0).get()
        guard let port = server.localAddress?.port else { throw TransportBenchError.peerFailed("no port") }
        return port
    }

    /// Sends a ping, waits on the loop until all of it has come back, times it, sends the next.
    final class LoopPingPong: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let ping: ByteBuffer
        private var context: ChannelHandlerContext?
        private var remaining = 0
        private var received = 0
        private var sentAt = ContinuousClock.now
        private var samples: [Double] = []
        private var done: EventLoopPromise<[Double]>?

        init(ping: ByteBuffer) {
            self.ping = ping
        }

        func handlerAdded(context: ChannelHandlerContext) {
            self.context = context
        }

        /// Starts `count` round trips; `done` gets each in microseconds.
        func start(count: Int, done: EventLoopPromise<[Double]>) {
            guard let context, count > 0 else {
                done.fail(TransportBenchError.connectionClosed)
                return
            }
            remaining = count
            samples = []
            samples.reserveCapacity(count)
            self.done = done
            sendPing(context: context)
        }

        private func sendPing(context: ChannelHandlerContext) {
            received = 0
            sentAt = .now
            context.writeAndFlush(wrapOutboundOut(ping), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard done != nil else { return }
            received += unwrapInboundIn(data).readableBytes
            guard received >= ping.readableBytes else { return }
            samples.append((ContinuousClock.now - sentAt).microseconds)
            remaining -= 1
            if remaining > 0 {
                sendPing(context: context)
            } else {
                done.take()?.succeed(samples)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            done.take()?.fail(TransportBenchError.connectionClosed)
            context.fireChannelInactive()
        }
    }

    /// A connection to a ``LoopEcho`` server with its ``LoopPingPong``.
    struct LoopClient: Sendable {
        let channel: any Channel
        let pingPong: NIOLoopBound<LoopPingPong>

        static func connect(group: any EventLoopGroup, port: Int, ping: ByteBuffer) async throws -> LoopClient {
            try await ClientBootstrap(group: group)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pingPong = LoopPingPong(ping: ping)
                        try channel.pipeline.syncOperations.addHandler(pingPong)
                        return LoopClient(
                            channel: channel, pingPong: NIOLoopBound(pingPong, eventLoop: channel.eventLoop))
                    }
                }
        }

        /// `count` round trips, each in microseconds.
        func roundTrips(count: Int) async throws -> [Double] {
            let done = channel.eventLoop.makePromise(of: [Double].self)
            let pingPong = self.pingPong
            channel.eventLoop.execute { pingPong.value.start(count: count, done: done) }
            return try await done.futureResult.get()
        }
    }
}
