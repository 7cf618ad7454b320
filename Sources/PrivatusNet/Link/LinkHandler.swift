import Foundation
import NIOCore
import NIOFoundationCompat
import PrivatusCore
import PrivatusCrypto
import PrivatusWire

/// Everything a link does below the async channel, in one handler that passes `ByteBuffer`s
/// (docs/PROTOCOL.md, "Wire format"):
///
/// - Link frames: the TCP byte stream is split into `length u16 ‖ Noise message`, read in place
///   from the receive buffer; only a frame that spans two reads is copied, into a buffer sized by
///   its (16-bit, non-zero) length. A zero length closes the connection.
/// - Noise: the authenticated XX handshake; then every frame is decrypted on arrival into a
///   buffer reused for the whole read, and every outgoing stream frame sealed straight into the
///   buffer written to the socket — from the message's own bytes when it was encoded behind a frame
///   header (``WireCodec/encodeBehindFrameHeader(_:maxBytes:)``, what ``Link`` does; while the
///   sender still holds the array, Swift copies it once on its first frame), from a copy behind
///   the header otherwise. Nothing but
///   handshake messages passes before the handshake has finished; a handshake that fails or does
///   not finish within the timeout closes the connection and fails `established`; a transport
///   message that does not decrypt closes the connection.
/// - Streams: decrypted frames are parsed in place and reassembled per stream up to
///   ``MultiplexConfiguration/maxMessageBytes``; credit is returned once a quarter of the window
///   has been consumed. Outbound messages are queued per stream and go to the socket only while
///   the channel is writable, always from the most urgent stream with something to send
///   (control, chat, dht, then bulk) and within the stream's credit, so control and chat never
///   wait behind bulk for more than the frame already being written. A peer that stops reading
///   is dropped when the queue passes ``MultiplexConfiguration/maxQueuedBytes`` or makes no
///   progress for ``MultiplexConfiguration/stallTimeout``.
/// - Control: every message is decoded into an envelope; pings are answered with pongs; a message
///   of an unknown kind, another version, or one that does not parse is answered with an
///   `ErrorReply` on its stream and not passed on (the link stays open). When nothing has been
///   written for the keepalive interval a ping goes out; when nothing has been read for the read
///   timeout the link is closed. One scheduled task checks both timestamps.
final class LinkHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = InboundMessage
    typealias OutboundIn = LinkMessage
    typealias OutboundOut = ByteBuffer

    /// Stream indices from the most urgent: control, chat, dht, bulk.
    static let priority: [Int] = [StreamID.control, .chat, .dht, .bulk].map { Int($0.rawValue) }
    /// The buffer bulk frames are sealed into: three full frames of 65,537 bytes (NIO allocates
    /// powers of two). A frame is sealed into one buffer, never split across two.
    static let outputBufferBytes = 1 << 18
    /// The buffer small frames (chat, control) are sealed into: many per buffer.
    static let smallOutputBytes = 1 << 12
    /// Bytes copied per `memmove` on the hot path. Above ≈ 2–4 KiB glibc's `memmove` uses
    /// `rep movsb`, which on the AMD EPYC machines measured runs ≈ 15× slower (≈ 80 µs instead of
    /// ≈ 5 µs for 64 KiB) when the destination lies a few bytes past the source modulo 4 KiB: as it
    /// does for equally sized buffers copied at a 2- or 12-byte offset, which link frames are.
    static let copyPiece = 2048
    /// The plaintext buffer's capacity kept between bursts.
    static let idlePlaintextCapacity = 4096

    struct Pending {
        /// The message behind `headroom` bytes (see ``LinkMessage``).
        var storage: [UInt8]
        let headroom: Int
        /// Message bytes already sealed into frames.
        var offset = 0
        var promise: EventLoopPromise<Void>?
        /// The bytes to let out of the send gate when the last frame is written (0: not gated).
        var gatedBytes: Int

        /// The message's length.
        var count: Int { storage.count - headroom }
    }

    struct Outbound {
        var queue = CircularBuffer<Pending>()
        var credit: Int
    }

    // MARK: Session

    var handshake: AuthenticatedHandshake?
    var transport: NoiseTransport?
    let isInitiator: Bool
    let established: EventLoopPromise<LinkPeer>
    let configuration: LinkConfiguration
    let counters: LinkCounters
    let gate: SendGate
    var handshakeTimer: Scheduled<Void>?
    var started = false
    /// The link has failed or its channel is inactive: nothing more is read or written.
    var closed = false

    // MARK: Keepalive

    var keepaliveTimer: Scheduled<Void>?
    var lastRead = NIODeadline.uptimeNanoseconds(0)
    var lastWrite = NIODeadline.uptimeNanoseconds(0)
    var pingNonce: UInt64 = 0

    // MARK: Inbound

    /// The start of a link frame whose end has not arrived yet.
    var partialFrame: ByteBuffer?
    /// Where the frames of one read are decrypted into (see `openingBuffer(count:)`).
    var opening: UnsafeMutableRawBufferPointer?
    var reassemblers: [Reassembler]
    /// Bytes consumed per stream since credit was last returned.
    var consumed: [Int]

    // MARK: Outbound

    var outbound: [Outbound]
    var queuedBytes = 0
    var stallTimer: Scheduled<Void>?
    var drains: [EventLoopPromise<Void>] = []
    /// Sealed frames not yet handed to the channel.
    var output: ByteBuffer?
    /// Completed when `output` has been written (the promises of messages that end in it).
    var outputPromise: EventLoopPromise<Void>?
    /// Something was written to the channel since the last flush.
    var unflushed = false
    /// The plaintext of the stream frame being sealed (reused).
    var plaintext: [UInt8] = []

    /// - Parameters:
    ///   - handshake: the handshake to run; ignored when `transport` is given.
    ///   - transport: an established session (tests: a link past its handshake).
    init(
        handshake: consuming AuthenticatedHandshake?, transport: consuming NoiseTransport? = nil, isInitiator: Bool,
        established: EventLoopPromise<LinkPeer>, configuration: LinkConfiguration, counters: LinkCounters,
        gate: SendGate
    ) {
        self.handshake = consume handshake
        self.transport = consume transport
        self.isInitiator = isInitiator
        self.established = established
        self.configuration = configuration
        self.counters = counters
        self.gate = gate
        let streams = StreamID.allCases.count
        outbound = Array(repeating: Outbound(credit: configuration.multiplex.streamWindow), count: streams)
        reassemblers = Array(
            repeating: Reassembler(maxMessageBytes: configuration.multiplex.maxMessageBytes), count: streams)
        consumed = Array(repeating: 0, count: streams)
    }

    // MARK: - Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { begin(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        begin(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if transport == nil { fail(.handshakeFailed, context: context) }
        closed = true
        cancelTimers()
        failQueued(.closed)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        releaseOpeningBuffer()
        cancelTimers()
        established.fail(LinkError.closed)  // no effect once it has succeeded
        failQueued(.closed)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Errors from the socket: close.
        if !closed { fail(error as? LinkError ?? .malformedFrame, context: context) }
    }

    private func begin(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        lastRead = context.eventLoop.now
        lastWrite = lastRead
        scheduleKeepalive(context: context)
        guard transport == nil else { return }
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.handshakeTimeout) {
            [weak self] in
            guard let self, self.transport == nil else { return }
            self.counters.handshakeFailed(.timeout)
            self.fail(.handshakeTimeout, context: context)
        }
        guard isInitiator else { return }
        do {
            guard var state = handshake.take() else { return }
            let first = try state.start()
            handshake = consume state
            first.withUnsafeBytes { appendFrame($0, context: context) }
            flushOutput(context: context)
        } catch {
            counters.handshakeFailed(.protocolError)
            fail(.handshakeFailed, context: context)
        }
    }

    private func cancelTimers() {
        handshakeTimer?.cancel()
        keepaliveTimer?.cancel()
        stallTimer?.cancel()
        stallTimer = nil
    }

    /// Closes the link for `error`: fails the handshake's promise and every queued message,
    /// passes the error on, closes the channel.
    func fail(_ error: LinkError, context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        cancelTimers()
        handshake = nil
        transport = nil
        established.fail(error)
        failQueued(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    // MARK: - Handshake

    func readHandshakeMessage(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        guard var state = handshake.take() else { return }
        let action: AuthenticatedHandshake.Action
        do {
            action = try state.receive(frame.readableBytesView)
        } catch .unexpectedPeer {
            counters.handshakeFailed(.unexpectedPeer)
            fail(.unexpectedPeer, context: context)
            return
        } catch {
            counters.handshakeFailed(.protocolError)
            fail(.handshakeFailed, context: context)
            return
        }
        switch consume action {
        case .send(let message):
            handshake = consume state
            message.withUnsafeBytes { appendFrame($0, context: context) }
        case .sendAndFinish(let message, let outcome):
            message.withUnsafeBytes { appendFrame($0, context: context) }
            finish(outcome, context: context)
        case .finish(let outcome):
            finish(outcome, context: context)
        }
    }

    private func finish(_ outcome: consuming AuthenticatedHandshake.Outcome, context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        let peer = LinkPeer(
            peerID: outcome.remotePeer, identity: outcome.remoteIdentity, handshakeHash: outcome.handshakeHash)
        let session = outcome.transport
        transport = consume session
        counters.handshakeSucceeded()
        established.succeed(peer)
        pump(context: context)  // anything queued while the handshake ran
    }

    // MARK: - Keepalive

    private func scheduleKeepalive(context: ChannelHandlerContext) {
        let deadline = min(lastRead + configuration.readTimeout, lastWrite + configuration.keepaliveInterval)
        keepaliveTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.checkKeepalive(context: context)
        }
    }

    /// Closes a link that has read nothing for the read timeout; pings when nothing has been
    /// written for the keepalive interval.
    private func checkKeepalive(context: ChannelHandlerContext) {
        guard !closed else { return }
        let now = context.eventLoop.now
        if now - lastRead >= configuration.readTimeout {
            context.close(promise: nil)
            return
        }
        if now - lastWrite >= configuration.keepaliveInterval {
            lastWrite = now
            if transport != nil {
                pingNonce &+= 1
                send(Envelope(.ping(Ping(nonce: pingNonce))), on: .control, context: context)
            }
        }
        scheduleKeepalive(context: context)
    }
}
