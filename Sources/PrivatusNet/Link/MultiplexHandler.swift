import Foundation
import NIOCore
import PrivatusWire

/// A message on one stream of a link.
public struct LinkMessage: Sendable, Hashable {
    public var stream: StreamID
    public var bytes: [UInt8]
    /// Whether the sender entered the link's ``SendGate`` with it (messages the link makes
    /// itself, pongs and error replies, do not).
    var gated = false

    public init(stream: StreamID, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// How a link multiplexes its streams.
public struct MultiplexConfiguration: Sendable {
    /// The largest message accepted or sent on any stream.
    public var maxMessageBytes = WireLimits.defaultMaxMessageBytes
    /// Bytes a stream may have in flight before the peer grants more (per stream).
    public var streamWindow = 1 << 20
    /// Bytes waiting to be sent on a link, over all streams, past which the peer counts as not
    /// reading and the link is dropped.
    public var maxQueuedBytes = 8 << 20
    /// How long queued bytes may wait without any being taken by the socket before the peer
    /// counts as not reading and the link is dropped.
    public var stallTimeout = TimeAmount.seconds(30)
    /// Queued bytes past which the node's senders wait, and to which the queue must fall
    /// before they go on.
    public var sendHighWatermark = 1 << 20
    public var sendLowWatermark = 512 << 10

    public init() {}
}

/// Turns stream frames into whole messages per stream, and messages into frames, scheduling the
/// frames of the streams so that control and chat never wait behind bulk for more than the
/// frame already being written.
///
/// Outbound: each message is queued on its stream; frames go to the socket only while the
/// channel is writable, always from the most urgent stream with something to send (control,
/// chat, dht, then bulk) and only within the stream's flow-control credit, which the peer
/// grants with `windowUpdate` frames as it consumes data. A peer that stops reading is dropped
/// when the queue passes ``MultiplexConfiguration/maxQueuedBytes`` or makes no progress for
/// ``MultiplexConfiguration/stallTimeout``.
///
/// Inbound: frames are decoded (`StreamFrame`), data is reassembled per stream up to
/// ``MultiplexConfiguration/maxMessageBytes``, and credit is returned once a quarter of the
/// window has been consumed. A malformed frame or an oversized message closes the link.
final class MultiplexHandler: ChannelDuplexHandler {
    typealias InboundIn = Data
    typealias InboundOut = LinkMessage
    typealias OutboundIn = LinkMessage
    typealias OutboundOut = Data

    /// Streams from the most urgent.
    static let priority: [StreamID] = [.control, .chat, .dht, .bulk]

    private struct Pending {
        var frames: Fragmenter
        var promise: EventLoopPromise<Void>?
        /// The bytes to let out of the send gate when the last frame is written (0: not gated).
        var gatedBytes: Int
    }

    private struct Outbound {
        var queue = CircularBuffer<Pending>()
        var credit: Int
    }

    private let configuration: MultiplexConfiguration
    private let counters: LinkCounters
    private let gate: SendGate
    private var outbound: [Outbound]
    private var reassemblers: [Reassembler]
    private var consumed: [Int]
    private var queuedBytes = 0
    private var stallTimer: Scheduled<Void>?
    private var closed = false
    private var drains: [EventLoopPromise<Void>] = []

    init(configuration: MultiplexConfiguration, counters: LinkCounters, gate: SendGate) {
        self.configuration = configuration
        self.counters = counters
        self.gate = gate
        let streams = StreamID.allCases.count
        outbound = Array(repeating: Outbound(credit: configuration.streamWindow), count: streams)
        reassemblers = Array(repeating: Reassembler(maxMessageBytes: configuration.maxMessageBytes), count: streams)
        consumed = Array(repeating: 0, count: streams)
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        let frame: StreamFrame
        do {
            frame = try StreamFrame(decoding: Array(Self.unwrapInboundIn(data)))
        } catch {
            counters.frameRejected(.malformed)
            drop(.malformedFrame, context: context)
            return
        }
        let index = Int(frame.stream.rawValue)
        switch frame.body {
        case .windowUpdate(let credit):
            outbound[index].credit = min(outbound[index].credit + Int(credit), Int(Int32.max))
            pump(context: context)
        case .reset:
            reassemblers[index].discard()
        case .fragment(let bytes), .final(let bytes):
            let message: [UInt8]?
            do {
                message = try reassemblers[index].receive(frame.body)
            } catch {
                counters.frameRejected(error == .messageTooLarge ? .messageTooLarge : .malformed)
                drop(error == .messageTooLarge ? .messageTooLarge : .malformedFrame, context: context)
                return
            }
            grantCredit(for: frame.stream, bytes: bytes.count, context: context)
            if let message {
                context.fireChannelRead(Self.wrapInboundOut(LinkMessage(stream: frame.stream, bytes: message)))
            }
        }
    }

    /// Returns credit to the peer once a quarter of the window has been consumed.
    private func grantCredit(for stream: StreamID, bytes: Int, context: ChannelHandlerContext) {
        let index = Int(stream.rawValue)
        consumed[index] += bytes
        guard consumed[index] > 0, consumed[index] >= configuration.streamWindow / 4 else { return }
        let frame = StreamFrame(stream: stream, body: .windowUpdate(credit: UInt32(clamping: consumed[index])))
        consumed[index] = 0
        // Control frames bypass the queues: they are tiny and must never wait behind data.
        guard let bytes = encoded(frame, context: context) else { return }
        context.writeAndFlush(Self.wrapOutboundOut(bytes), promise: nil)
    }

    /// The bytes of a frame this handler built. Its frames always encode (data frames come from
    /// a `Fragmenter`, credits are positive); if one ever did not, the link is dropped, not the
    /// node.
    private func encoded(_ frame: StreamFrame, context: ChannelHandlerContext) -> Data? {
        guard let bytes = try? frame.encoded() else {
            drop(.malformedFrame, context: context)
            return nil
        }
        return Data(bytes)
    }

    // MARK: - Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = Self.unwrapOutboundIn(data)
        // Every refusal lets a gated message's bytes out of the gate again.
        let gatedBytes = message.gated ? message.bytes.count : 0
        guard !closed else {
            gate.leave(gatedBytes)
            promise?.fail(LinkError.closed)
            return
        }
        guard message.bytes.count <= configuration.maxMessageBytes else {
            gate.leave(gatedBytes)
            promise?.fail(LinkError.messageTooLarge)
            return
        }
        guard queuedBytes + message.bytes.count <= configuration.maxQueuedBytes else {
            gate.leave(gatedBytes)
            promise?.fail(LinkError.slowReader)
            counters.frameRejected(.slowReader)
            drop(.slowReader, context: context)
            return
        }
        queuedBytes += message.bytes.count
        counters.queuedBytes.increment(by: Double(message.bytes.count))
        outbound[Int(message.stream.rawValue)].queue.append(
            Pending(
                frames: Fragmenter(stream: message.stream, message: message.bytes), promise: promise,
                gatedBytes: gatedBytes))
    }

    func flush(context: ChannelHandlerContext) {
        pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Writes frames while the socket takes them, most urgent stream first.
    private func pump(context: ChannelHandlerContext) {
        guard !closed else { return }
        var wrote = false
        while context.channel.isWritable, let stream = nextStream() {
            let index = Int(stream.rawValue)
            var pending = outbound[index].queue.removeFirst()
            guard let frame = pending.frames.next() else {
                gate.leave(pending.gatedBytes)
                pending.promise?.succeed()
                continue
            }
            let payload = frame.encodedCount - WireLimits.frameHeaderBytes
            outbound[index].credit -= payload
            queuedBytes -= payload
            counters.queuedBytes.decrement(by: Double(payload))
            guard let encoded = encoded(frame, context: context) else {
                pending.promise?.fail(LinkError.malformedFrame)
                return
            }
            if pending.frames.remainingFrames == 0 {
                context.write(Self.wrapOutboundOut(encoded), promise: pending.promise)
                if pending.gatedBytes > 0 { gate.leave(pending.gatedBytes) }
            } else {
                context.write(Self.wrapOutboundOut(encoded), promise: nil)
                outbound[index].queue.prepend(pending)
            }
            wrote = true
        }
        if wrote { context.flush() }
        watchForStall(context: context, progressed: wrote)
        completeDrains(context: context)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is LinkDrain else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        guard !closed else {
            promise?.succeed()
            return
        }
        if let promise { drains.append(promise) }
        completeDrains(context: context)
    }

    /// Once the queues are empty, a ping goes out behind everything written so far; its write
    /// completing means the socket has taken every earlier frame.
    private func completeDrains(context: ChannelHandlerContext) {
        guard !drains.isEmpty, Self.priority.allSatisfy({ outbound[Int($0.rawValue)].queue.isEmpty }) else { return }
        let waiting = drains
        drains = []
        guard let ping = try? WireCodec.encode(Envelope(.ping(Ping(nonce: 0)))),
            let bytes = encoded(StreamFrame(stream: .control, body: .final(ping)), context: context)
        else {
            for drain in waiting { drain.succeed() }  // nothing more will be written
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(Self.wrapOutboundOut(bytes), promise: written)
        for drain in waiting { written.futureResult.cascade(to: drain) }
    }

    /// The most urgent stream with a frame to send and credit to send it.
    private func nextStream() -> StreamID? {
        Self.priority.first { stream in
            let state = outbound[Int(stream.rawValue)]
            return !state.queue.isEmpty && state.credit > 0
        }
    }

    /// Starts the stall timer while frames wait and none can go: the socket takes nothing, or
    /// every waiting stream is out of credit (a peer that does not read grants none). Any frame
    /// written stops it.
    private func watchForStall(context: ChannelHandlerContext, progressed: Bool) {
        if progressed {
            stallTimer?.cancel()
            stallTimer = nil
        }
        let waiting = Self.priority.contains { !outbound[Int($0.rawValue)].queue.isEmpty }
        guard waiting else {
            stallTimer?.cancel()
            stallTimer = nil
            return
        }
        guard stallTimer == nil, !context.channel.isWritable || nextStream() == nil else { return }
        stallTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.stallTimeout) {
            [weak self] in
            guard let self else { return }
            self.counters.frameRejected(.slowReader)
            self.drop(.slowReader, context: context)
        }
    }

    // MARK: - Closing

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        failQueued(.closed)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failQueued(.closed)
    }

    private func drop(_ error: LinkError, context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        failQueued(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func failQueued(_ error: LinkError) {
        gate.close()
        stallTimer?.cancel()
        stallTimer = nil
        for index in outbound.indices {
            while let pending = outbound[index].queue.popFirst() { pending.promise?.fail(error) }
        }
        for drain in drains { drain.succeed() }  // nothing more will be written
        drains = []
        counters.queuedBytes.decrement(by: Double(queuedBytes))
        queuedBytes = 0
    }
}
