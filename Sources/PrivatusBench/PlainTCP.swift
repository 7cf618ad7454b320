import NIOCore
import NIOPosix
import PrivatusCore

/// The reference of `bench transport`: plain TCP between the same two processes, with the same
/// NIO structure as a link (`NIOAsyncChannel` on a connection, read and written from a task,
/// `TCP_NODELAY`, the same event loop group and back-pressure watermarks) and none of our
/// layers: no framing, no Noise, no streams, no envelopes, no connection manager.
///
/// A connection's first byte says what the server does with it: ``Mode/echo`` writes back every
/// byte it reads; ``Mode/sink`` reads rounds, each a big-endian u64 count then that many bytes,
/// and answers each round with one byte once it has all of it.
enum PlainTCP {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    enum Mode: UInt8 {
        case echo = 0x65
        case sink = 0x73
    }

    /// As a link's async channel (LinkPipeline).
    static let configuration = Connection.Configuration(
        backPressureStrategy: .init(lowWatermark: 8, highWatermark: 64))

    /// Listens on `host` (an ephemeral port) and serves every connection until the process ends.
    /// Returns the port.
    static func listen(group: any EventLoopGroup, host: String) async throws -> Int {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Connection(wrappingChannelSynchronously: channel, configuration: configuration)
                }
            }
        guard let port = server.channel.localAddress?.port else { throw TransportBenchError.peerFailed("no port") }
        Task {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { try? await serve(connection) }
                    }
                }
            }
        }
        return port
    }

    private static func serve(_ connection: Connection) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var mode: Mode?
            var header = ByteBuffer()
            var expected: Int?
            var received = 0
            for try await var buffer in inbound {
                if mode == nil {
                    guard let byte = buffer.readInteger(as: UInt8.self), let chosen = Mode(rawValue: byte) else {
                        return
                    }
                    mode = chosen
                }
                guard mode == .sink else {
                    if buffer.readableBytes > 0 { try await outbound.write(buffer) }
                    continue
                }
                while buffer.readableBytes > 0 {
                    guard let total = expected else {
                        var part = buffer.readSlice(length: min(8 - header.readableBytes, buffer.readableBytes))!
                        header.writeBuffer(&part)
                        if header.readableBytes == 8 {
                            expected = Int(header.readInteger(as: UInt64.self)!)
                            header.clear()
                            received = 0
                        }
                        continue
                    }
                    let taken = min(total - received, buffer.readableBytes)
                    buffer.moveReaderIndex(forwardBy: taken)
                    received += taken
                    if received == total {
                        expected = nil
                        try await outbound.write(ByteBuffer(integer: UInt8(1)))
                    }
                }
            }
        }
    }

    /// Opens a connection in `mode` to the server at `host`:`port`.
    static func connect(group: any EventLoopGroup, host: String, port: Int, mode: Mode) async throws -> Connection {
        let connection = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Connection(wrappingChannelSynchronously: channel, configuration: configuration)
                }
            }
        return connection
    }
}

extension PlainTCP {
    /// One round against a ``Mode/sink`` connection: the round's length, `count` writes of
    /// `payload`, then the server's one-byte answer once it has read them all. Returns MB/s
    /// (10^6 bytes).
    static func sinkRound(
        count: Int, payload: ByteBuffer, replies: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> Double {
        let total = count * payload.readableBytes
        let start = ContinuousClock.now
        try await outbound.write(ByteBuffer(integer: UInt64(total)))
        for _ in 0..<count { try await outbound.write(payload) }
        guard try await replies.next() != nil else { throw TransportBenchError.connectionClosed }
        return Double(total) / (ContinuousClock.now - start).seconds / 1_000_000
    }

    /// `plain_tcp_mb_s` as `bench transport` measures it, alone: `rounds` rounds of `bytes`
    /// bytes in writes of `writeBytes` to the sink server at `port` on loopback (another
    /// process); the median round, in MB/s.
    static func sinkThroughput(
        group: any EventLoopGroup, port: Int, writeBytes: Int, bytes: Int, rounds: Int
    ) async throws -> Double {
        let count = max(1, bytes / writeBytes)
        let payload = ByteBuffer(repeating: 0x62, count: writeBytes)
        let connection = try await connect(group: group, host: "127.0.0.1", port: port, mode: .sink)
        let samples = try await connection.executeThenClose { inbound, outbound in
            var replies = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(integer: Mode.sink.rawValue))
            var samples: [Double] = []
            for _ in 0..<rounds {
                samples.append(try await sinkRound(count: count, payload: payload, replies: &replies, outbound))
            }
            return samples
        }
        return TransportSuite.percentile(samples, 50)
    }
}

/// Why `bench transport` could not measure.
struct TransportBenchError: Error, CustomStringConvertible {
    let description: String

    static func peerFailed(_ why: String) -> Self { Self(description: "the benchmark's peer process failed: \(why)") }
    static let connectionClosed = Self(description: "a benchmark connection closed early")
    static let timedOut = Self(description: "the benchmark's peer did not answer in time")
}
