import Foundation
import NIOCore
import NIOFoundationCompat
import PrivatusCore
import PrivatusCrypto

/// Who is at the other end of an established link.
public struct LinkPeer: Sendable, Hashable {
    /// The peer's authenticated PeerID.
    public let peerID: PeerID
    /// The identity key that signed the peer's Noise static key.
    public let identity: IdentityPublicKey
    /// The Noise handshake hash, the same at both ends (channel binding).
    public let handshakeHash: Data
}

/// Runs the authenticated Noise XX handshake over link frames, then encrypts and decrypts every
/// frame of the link. Inbound: link frame bodies in, plaintexts (`Data`) out. Outbound:
/// plaintexts in, framed ciphertexts out.
///
/// Nothing but handshake messages passes before the handshake has finished; a handshake that
/// fails or does not finish within the timeout closes the connection and fails `established`.
/// A transport message that does not decrypt closes the connection: after one, the stream can
/// no longer be trusted.
final class NoiseHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Data
    typealias OutboundIn = Data
    typealias OutboundOut = ByteBuffer

    /// The largest frame written as one buffer (NIO allocates buffers in powers of two).
    static let largestSingleBuffer = 1 << 16

    private var handshake: AuthenticatedHandshake?
    private var transport: NoiseTransport?
    private let isInitiator: Bool
    private let established: EventLoopPromise<LinkPeer>
    private let timeout: TimeAmount
    private let counters: LinkCounters
    private var timer: Scheduled<Void>?
    private var started = false
    private var failed = false

    init(
        handshake: consuming AuthenticatedHandshake, isInitiator: Bool, established: EventLoopPromise<LinkPeer>,
        timeout: TimeAmount, counters: LinkCounters
    ) {
        self.handshake = consume handshake
        self.isInitiator = isInitiator
        self.established = established
        self.timeout = timeout
        self.counters = counters
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { begin(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        begin(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if transport == nil { fail(.handshakeFailed, context: context) }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        established.fail(LinkError.closed)  // no effect once it has succeeded
    }

    private func begin(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self, self.transport == nil else { return }
            self.counters.handshakeFailed(.timeout)
            self.fail(.handshakeTimeout, context: context)
        }
        guard isInitiator else { return }
        do {
            guard var state = handshake.take() else { return }
            let first = try state.start()
            handshake = consume state
            writeFrame(first, context: context)
            context.flush()
        } catch {
            counters.handshakeFailed(.protocolError)
            fail(.handshakeFailed, context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let frame = Self.unwrapInboundIn(data)
        if var session = transport.take() {
            do {
                let plaintext = try session.decrypt(frame.readableBytesView)
                transport = consume session
                counters.framesIn(bytes: frame.readableBytes)
                context.fireChannelRead(Self.wrapInboundOut(plaintext))
            } catch {
                counters.frameRejected(.decryption)
                fail(.decryptionFailed, context: context)
            }
            return
        }
        readHandshakeMessage(frame, context: context)
    }

    private func readHandshakeMessage(_ frame: ByteBuffer, context: ChannelHandlerContext) {
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
            writeFrame(message, context: context)
            context.flush()
        case .sendAndFinish(let message, let outcome):
            writeFrame(message, context: context)
            context.flush()
            finish(outcome, context: context)
        case .finish(let outcome):
            finish(outcome, context: context)
        }
    }

    private func finish(_ outcome: consuming AuthenticatedHandshake.Outcome, context: ChannelHandlerContext) {
        timer?.cancel()
        let peer = LinkPeer(
            peerID: outcome.remotePeer, identity: outcome.remoteIdentity, handshakeHash: outcome.handshakeHash)
        let session = outcome.transport
        transport = consume session
        counters.handshakeSucceeded()
        established.succeed(peer)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Errors from the frame decoder before this handler: count them, then close.
        if !failed {
            if error as? LinkError == .malformedFrame {
                counters.frameRejected(.malformed)
            } else if error is ByteToMessageDecoderError {
                counters.frameRejected(.oversized)
            }
            fail(error as? LinkError ?? .malformedFrame, context: context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard var session = transport.take() else {
            promise?.fail(LinkError.notEstablished)
            return
        }
        do {
            let ciphertext = try session.encrypt(Self.unwrapOutboundIn(data))
            transport = consume session
            counters.framesOut(bytes: ciphertext.count)
            if ciphertext.count + 2 > Self.largestSingleBuffer {
                // A full frame is 65,537 bytes: as one buffer NIO would round it up to a fresh
                // 128 KiB allocation. The length goes in a buffer of its own instead.
                var length = context.channel.allocator.buffer(capacity: 2)
                length.writeInteger(UInt16(ciphertext.count))
                var body = context.channel.allocator.buffer(capacity: ciphertext.count)
                body.writeBytes(ciphertext)
                context.write(Self.wrapOutboundOut(length), promise: nil)
                context.write(Self.wrapOutboundOut(body), promise: promise)
            } else {
                var buffer = context.channel.allocator.buffer(capacity: 2 + ciphertext.count)
                buffer.writeLinkFrame(ciphertext)
                context.write(Self.wrapOutboundOut(buffer), promise: promise)
            }
        } catch {
            // Too large (a stream-layer bug) or the nonces are spent: the link cannot go on.
            promise?.fail(LinkError.messageTooLarge)
            fail(.closed, context: context)
        }
    }

    private func writeFrame(_ body: Data, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 2 + body.count)
        buffer.writeLinkFrame(body)
        context.write(Self.wrapOutboundOut(buffer), promise: nil)
    }

    private func fail(_ error: LinkError, context: ChannelHandlerContext) {
        guard !failed else { return }
        failed = true
        timer?.cancel()
        handshake = nil
        transport = nil
        established.fail(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
