import Foundation
import MetricsTestKit
import NIOCore
import NIOEmbedded
import PrivatusWire
import Testing

@testable import PrivatusNet

/// The link's stream layer as a state machine on an embedded channel: no sockets, exact frame
/// order. The test plays the peer: it holds the other end of an established Noise session, so
/// what it reads and writes are the link frames on the wire.
final class EmbeddedLink {
    let channel = EmbeddedChannel()
    let metrics = TestMetrics()
    /// The peer's end of the session.
    private var peer: NoiseTransport
    /// Bytes written by the link not yet split into frames.
    private var wire = ByteBuffer()

    init(configure: (inout LinkConfiguration) -> Void) throws {
        var pair = try noiseTransports()
        var configuration = LinkConfiguration()
        configure(&configuration)
        let session = pair.initiator
        peer = pair.responder
        try channel.pipeline.syncOperations.addHandler(
            LinkHandler(
                handshake: nil, transport: session, isInitiator: true,
                established: channel.eventLoop.makePromise(), configuration: configuration,
                counters: LinkCounters(factory: metrics), gate: SendGate(high: 1 << 20, low: 1 << 19)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()  // active, as a link is
        #expect(channel.isActive)
    }

    convenience init(window: Int = 1 << 20) throws {
        try self.init { $0.multiplex.streamWindow = window }
    }

    /// The stream frames the link has written so far, decrypted and decoded.
    func written() throws -> [StreamFrame] {
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&buffer) }
        var frames: [StreamFrame] = []
        while let length = wire.getInteger(at: wire.readerIndex, as: UInt16.self),
            wire.readableBytes >= 2 + Int(length)
        {
            wire.moveReaderIndex(forwardBy: 2)
            let message = wire.readBytes(length: Int(length))!
            frames.append(try StreamFrame(decoding: Array(try peer.decrypt(message))))
        }
        return frames
    }

    /// Sends one stream frame's bytes to the link as the peer, encrypted and framed.
    /// One stream frame's bytes sealed by the peer (the next message of its session).
    func seal(_ plaintext: [UInt8]) throws -> [UInt8] {
        Array(try peer.encrypt(plaintext))
    }

    func receive(_ plaintext: [UInt8]) throws {
        let message = try seal(plaintext)
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt16(message.count))
        buffer.writeBytes(message)
        try channel.writeInbound(buffer)
    }

    func receive(_ frame: StreamFrame) throws { try receive(try frame.encoded()) }

    func rejected(_ reason: LinkCounters.Rejection) -> Int64 {
        metrics.counterTotal(label: "privatus_link_rejected_total", dimensions: [("reason", reason.rawValue)])
    }
}

@Suite struct MultiplexTests {
    /// A chat message of `count` encoded bytes in all.
    static func message(sealedBytes count: Int, fill: UInt8 = 1) -> Envelope.Body {
        .chatMessage(
            ChatMessage(messageID: [UInt8](repeating: 7, count: 16), sealed: [UInt8](repeating: fill, count: count)))
    }

    @Test func chatOvertakesQueuedBulkAndBulkWaitsOnlyForItsCredit() throws {
        let link = try EmbeddedLink(window: 128 << 10)
        // A 1 MiB bulk message: frames go out until its 128 KiB of credit is spent (the last may
        // overdraw it), then it waits.
        link.channel.write(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 1, count: 1 << 20)), promise: nil)
        link.channel.flush()
        var frames = try link.written()
        #expect(frames.map(\.stream) == [.bulk, .bulk, .bulk])
        #expect(frames.allSatisfy { $0.body.type == .fragment })

        // Chat is not held back by the bulk stream's missing credit.
        link.channel.writeAndFlush(LinkMessage(stream: .chat, bytes: Array("urgent".utf8)), promise: nil)
        frames = try link.written()
        #expect(frames == [StreamFrame(stream: .chat, body: .final(Array("urgent".utf8)))])

        // Credit from the peer lets bulk go on.
        try link.receive(StreamFrame(stream: .bulk, body: .windowUpdate(credit: 200_000)))
        frames = try link.written()
        #expect(!frames.isEmpty && frames.allSatisfy { $0.stream == .bulk })
    }

    @Test func framesQueuedTogetherGoMostUrgentFirst() throws {
        let link = try EmbeddedLink()
        link.channel.isWritable = false
        link.channel.write(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 1, count: 200_000)), promise: nil)
        link.channel.write(LinkMessage(stream: .dht, bytes: [3]), promise: nil)
        link.channel.write(LinkMessage(stream: .chat, bytes: [1]), promise: nil)
        link.channel.write(LinkMessage(stream: .control, bytes: [0]), promise: nil)
        link.channel.flush()
        #expect(try link.written().isEmpty, "nothing while the socket takes nothing")
        link.channel.isWritable = true
        link.channel.pipeline.fireChannelWritabilityChanged()
        let order = try link.written().map(\.stream)
        #expect(order == [.control, .chat, .dht, .bulk, .bulk, .bulk, .bulk])
    }

    /// A message encoded behind a frame header is sealed where it lies, each frame's header
    /// written over the bytes just before its payload: the frames are those of the same message
    /// copied frame by frame, a chat message queued meanwhile keeps its place, and the message
    /// arrives whole.
    @Test(arguments: [0, 1, 65_515, 65_516, 200_000])
    func aMessageEncodedBehindAFrameHeaderIsSealedInPlace(sealedBytes: Int) throws {
        let link = try EmbeddedLink()
        let body = Self.message(sealedBytes: sealedBytes, fill: 9)
        let encoded = try WireCodec.encode(Envelope(body))
        let behind = try WireCodec.encodeBehindFrameHeader(Envelope(body))
        #expect(Array(behind.dropFirst(WireLimits.frameHeaderBytes)) == encoded)
        link.channel.isWritable = false
        link.channel.write(LinkMessage(stream: .bulk, behindFrameHeader: behind), promise: nil)
        link.channel.write(LinkMessage(stream: .chat, bytes: [1]), promise: nil)
        link.channel.flush()
        link.channel.isWritable = true
        link.channel.pipeline.fireChannelWritabilityChanged()
        let frames = try link.written()
        let expected =
            [StreamFrame(stream: .chat, body: .final([1]))] + Array(Fragmenter(stream: .bulk, message: encoded))
        #expect(frames == expected)
    }

    @Test func messagesReassembleAndCreditIsReturned() throws {
        let link = try EmbeddedLink(window: 64 << 10)
        let body = Self.message(sealedBytes: 200_000)
        let message = try WireCodec.encode(Envelope(body))
        for frame in Fragmenter(stream: .bulk, message: message) { try link.receive(frame) }
        let received = try #require(try link.channel.readInbound(as: InboundMessage.self))
        #expect(received == InboundMessage(stream: .bulk, body: body))
        let credit = try link.written().compactMap { frame -> UInt32? in
            guard frame.stream == .bulk, case .windowUpdate(let credit) = frame.body else { return nil }
            return credit
        }
        #expect(
            credit.reduce(0, +) >= UInt32(message.count) - (16 << 10), "credit comes back a quarter window at a time")
    }

    @Test func aMessageInOneFrameIsDeliveredAndItsEmptyNeighbourAnswered() throws {
        let link = try EmbeddedLink()
        try link.receive(StreamFrame(stream: .chat, body: .final(try WireCodec.encode(Envelope(chat("hello"))))))
        #expect(
            try link.channel.readInbound(as: InboundMessage.self) == InboundMessage(stream: .chat, body: chat("hello")))
        // An empty message reads as an envelope of version 0: answered, not passed on.
        try link.receive(StreamFrame(stream: .dht, body: .final([])))
        #expect(try link.channel.readInbound(as: InboundMessage.self) == nil)
        let replies = try link.written()
        #expect(replies.count == 1 && replies.first?.stream == .dht)
        #expect(link.rejected(.unknownKind) == 1)
    }

    @Test func aPingIsAnsweredWithAPongOnTheControlStream() throws {
        let link = try EmbeddedLink()
        try link.receive(
            StreamFrame(stream: .chat, body: .final(try WireCodec.encode(Envelope(.ping(Ping(nonce: 42)))))))
        #expect(try link.channel.readInbound(as: InboundMessage.self) == nil)
        let pong = try WireCodec.encode(Envelope(.pong(Pong(nonce: 42))))
        #expect(try link.written() == [StreamFrame(stream: .control, body: .final(pong))])
    }

    @Test func aMalformedFrameClosesTheLink() throws {
        let link = try EmbeddedLink()
        #expect(throws: LinkError.malformedFrame) { try link.receive([9, 1, 0]) }
        #expect(!link.channel.isActive)
        #expect(link.rejected(.malformed) == 1)
    }

    @Test func aFrameThatDoesNotDecryptClosesTheLink() throws {
        let link = try EmbeddedLink()
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt16(40))
        buffer.writeBytes([UInt8](repeating: 0x5a, count: 40))
        #expect(throws: LinkError.decryptionFailed) { try link.channel.writeInbound(buffer) }
        #expect(!link.channel.isActive)
        #expect(link.rejected(.decryption) == 1)
    }

    @Test func framesSplitAcrossReadsAtAnyByteAreReassembled() throws {
        let link = try EmbeddedLink()
        let bodies = [chat("one"), Self.message(sealedBytes: 70_000, fill: 2), chat("three")]
        // The peer's frames for all three messages, as one byte stream.
        var stream = ByteBuffer()
        var frames: [StreamFrame] = []
        for body in bodies { frames += Array(Fragmenter(stream: .chat, message: try WireCodec.encode(Envelope(body)))) }
        let sealed = try link.sealAsPeer(frames)
        stream.writeBytes(sealed)
        // Delivered in pieces of 1, 2, 3, … bytes, so that every kind of split happens.
        var size = 1
        while stream.readableBytes > 0 {
            try link.channel.writeInbound(stream.readSlice(length: min(size, stream.readableBytes))!)
            size = size % 4099 + 1
        }
        for body in bodies {
            #expect(try link.channel.readInbound(as: InboundMessage.self) == InboundMessage(stream: .chat, body: body))
        }
        #expect(link.channel.isActive)
    }

    @Test func anEmptyLinkFrameClosesTheLink() throws {
        let link = try EmbeddedLink()
        #expect(throws: LinkError.malformedFrame) { try link.channel.writeInbound(ByteBuffer(bytes: [0, 0])) }
        #expect(!link.channel.isActive)
        #expect(link.rejected(.malformed) == 1)
    }

    @Test func aQuietLinkPingsAndASilentPeerIsClosedAtTheReadTimeout() throws {
        let link = try EmbeddedLink {
            $0.keepaliveInterval = .seconds(15)
            $0.readTimeout = .seconds(45)
        }
        let loop = link.channel.embeddedEventLoop
        loop.advanceTime(by: .seconds(14))
        #expect(try link.written().isEmpty)
        loop.advanceTime(by: .seconds(1))
        let ping = try WireCodec.encode(Envelope(.ping(Ping(nonce: 1))))
        #expect(try link.written() == [StreamFrame(stream: .control, body: .final(ping))])
        // Something read keeps the link open past the read timeout; writing does not.
        loop.advanceTime(by: .seconds(20))
        try link.receive(StreamFrame(stream: .chat, body: .windowUpdate(credit: 1)))
        loop.advanceTime(by: .seconds(44))
        #expect(link.channel.isActive)
        #expect(try link.written().count == 4, "a ping every 15 s of writing nothing: at 30, 45, 60 and 75 s")
        loop.advanceTime(by: .seconds(1))
        #expect(!link.channel.isActive)
    }

    @Test func pastTheQueueBoundTheLinkIsDropped() throws {
        let link = try EmbeddedLink { $0.multiplex.maxQueuedBytes = 100_000 }
        let channel = link.channel
        channel.isWritable = false
        let first = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 0, count: 90_000)), promise: first)
        let second = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 0, count: 20_000)), promise: second)
        #expect(throws: LinkError.slowReader) { try second.futureResult.wait() }
        #expect(throws: LinkError.slowReader) { try first.futureResult.wait() }
        #expect(!channel.isActive)
    }

    @Test func aMessagesPromiseCompletesWhenItsLastFrameIsWritten() throws {
        let link = try EmbeddedLink()
        let written = link.channel.eventLoop.makePromise(of: Void.self)
        link.channel.writeAndFlush(
            LinkMessage(stream: .bulk, bytes: [UInt8](repeating: 5, count: 150_000)), promise: written)
        try written.futureResult.wait()
        let frames = try link.written()
        #expect(frames.map(\.body.type) == [.fragment, .fragment, .final])
        #expect(
            frames.flatMap { frame -> [UInt8] in
                switch frame.body {
                case .fragment(let bytes), .final(let bytes): bytes
                default: []
                }
            } == [UInt8](repeating: 5, count: 150_000))
    }
}

extension EmbeddedLink {
    /// `frames` sealed by the peer, as link frames in one byte string.
    func sealAsPeer(_ frames: [StreamFrame]) throws -> [UInt8] {
        var out: [UInt8] = []
        for frame in frames {
            let message = try seal(try frame.encoded())
            out.append(UInt8(message.count >> 8))
            out.append(UInt8(message.count & 0xff))
            out += message
        }
        return out
    }
}
