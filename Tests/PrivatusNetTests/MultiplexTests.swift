import Foundation
import MetricsTestKit
import NIOCore
import NIOEmbedded
import PrivatusWire
import Testing

@testable import PrivatusNet

/// The multiplexer as a state machine on an embedded channel: no sockets, exact frame order.
@Suite struct MultiplexTests {
    static func channel(window: Int = 1 << 20) throws -> EmbeddedChannel {
        var configuration = MultiplexConfiguration()
        configuration.streamWindow = window
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            MultiplexHandler(
                configuration: configuration, counters: LinkCounters(factory: TestMetrics()),
                gate: SendGate(high: 1 << 20, low: 1 << 19)))
        return channel
    }

    /// The frames written so far, decoded.
    static func written(_ channel: EmbeddedChannel) throws -> [StreamFrame] {
        var frames: [StreamFrame] = []
        while let data = try channel.readOutbound(as: Data.self) {
            frames.append(try StreamFrame(decoding: Array(data)))
        }
        return frames
    }

    @Test func chatOvertakesQueuedBulkAndBulkWaitsOnlyForItsCredit() throws {
        let channel = try Self.channel(window: 128 << 10)
        // A 1 MiB bulk message: frames go out until its 128 KiB of credit is spent (the last may
        // overdraw it), then it waits.
        channel.write(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 1, count: 1 << 20)), promise: nil)
        channel.flush()
        var frames = try Self.written(channel)
        #expect(frames.map(\.stream) == [.bulk, .bulk, .bulk])
        #expect(frames.allSatisfy { $0.body.type == .fragment })

        // Chat is not held back by the bulk stream's missing credit.
        channel.writeAndFlush(LinkMessage(stream: .chat, bytes: Array("urgent".utf8)), promise: nil)
        frames = try Self.written(channel)
        #expect(frames == [StreamFrame(stream: .chat, body: .final(Array("urgent".utf8)))])

        // Credit from the peer lets bulk go on.
        try channel.writeInbound(Data(try StreamFrame(stream: .bulk, body: .windowUpdate(credit: 200_000)).encoded()))
        frames = try Self.written(channel)
        #expect(!frames.isEmpty && frames.allSatisfy { $0.stream == .bulk })
    }

    @Test func framesQueuedTogetherGoMostUrgentFirst() throws {
        let channel = try Self.channel()
        channel.isWritable = false
        channel.write(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 1, count: 200_000)), promise: nil)
        channel.write(LinkMessage(stream: .dht, bytes: [3]), promise: nil)
        channel.write(LinkMessage(stream: .chat, bytes: [1]), promise: nil)
        channel.write(LinkMessage(stream: .control, bytes: [0]), promise: nil)
        channel.flush()
        #expect(try Self.written(channel).isEmpty, "nothing while the socket takes nothing")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        let order = try Self.written(channel).map(\.stream)
        #expect(order == [.control, .chat, .dht, .bulk, .bulk, .bulk, .bulk])
    }

    @Test func messagesReassembleAndCreditIsReturned() throws {
        let channel = try Self.channel(window: 64 << 10)
        let message = [UInt8]((0..<200_000).map { UInt8(truncatingIfNeeded: $0) })
        for frame in Fragmenter(stream: .bulk, message: message) {
            try channel.writeInbound(Data(try frame.encoded()))
        }
        let received = try #require(try channel.readInbound(as: LinkMessage.self))
        #expect(received == LinkMessage(stream: .bulk, bytes: message))
        let credit = try Self.written(channel).compactMap { frame -> UInt32? in
            guard frame.stream == .bulk, case .windowUpdate(let credit) = frame.body else { return nil }
            return credit
        }
        #expect(credit.reduce(0, +) >= 200_000 - (16 << 10), "credit comes back a quarter window at a time")
    }

    @Test func aMalformedFrameClosesTheLink() throws {
        let channel = try Self.channel()
        #expect(throws: LinkError.malformedFrame) { try channel.writeInbound(Data([9, 1, 0])) }
        #expect(!channel.isActive)
    }

    @Test func pastTheQueueBoundTheLinkIsDropped() throws {
        var configuration = MultiplexConfiguration()
        configuration.maxQueuedBytes = 100_000
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            MultiplexHandler(
                configuration: configuration, counters: LinkCounters(factory: TestMetrics()),
                gate: SendGate(high: 1 << 20, low: 1 << 19)))
        channel.isWritable = false
        let first = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 0, count: 90_000)), promise: first)
        let second = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 0, count: 20_000)), promise: second)
        #expect(throws: LinkError.slowReader) { try second.futureResult.wait() }
        #expect(throws: LinkError.slowReader) { try first.futureResult.wait() }
        #expect(!channel.isActive)
    }
}
