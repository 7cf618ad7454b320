import NIOCore
import PrivatusWire

/// A message received on a link, decoded.
public struct InboundMessage: Sendable, Equatable {
    public var stream: StreamID
    public var body: Envelope.Body
}

/// The top of a link's pipeline: decodes every message into an envelope, answers what the link
/// answers itself, and passes the rest on.
///
/// - Keepalive: when nothing has been written for the keepalive interval it sends a `Ping` on
///   the control stream; it answers pings with a `Pong`; when nothing at all has been read for
///   the read timeout (longer than the peer's keepalive interval) the link is closed.
/// - A message of an unknown kind or another version is answered with an `ErrorReply` on the
///   same stream (docs/PROTOCOL.md, "Envelope"), never passed on, and the link stays open; so is
///   one that does not parse (`malformed`). Error replies are never answered.
final class ControlHandler: ChannelDuplexHandler {
    typealias InboundIn = LinkMessage
    typealias InboundOut = InboundMessage
    typealias OutboundIn = LinkMessage
    typealias OutboundOut = LinkMessage

    private let maxMessageBytes: Int
    private let counters: LinkCounters
    private var nextNonce: UInt64 = 0

    init(maxMessageBytes: Int, counters: LinkCounters) {
        self.maxMessageBytes = maxMessageBytes
        self.counters = counters
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event as? IdleStateHandler.IdleStateEvent {
        case .write?:
            nextNonce &+= 1
            send(Envelope(.ping(Ping(nonce: nextNonce))), on: .control, context: context)
        case .read?:
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = Self.unwrapInboundIn(data)
        let decoded: DecodedEnvelope
        do {
            decoded = try WireCodec.decode(message.bytes, maxBytes: maxMessageBytes)
        } catch {
            counters.frameRejected(.malformed)
            send(
                Envelope(.errorReply(ErrorReply(code: error.replyCode, kind: 0))), on: message.stream, context: context)
            return
        }
        switch decoded {
        case .message(.ping(let ping)):
            send(Envelope(.pong(Pong(nonce: ping.nonce))), on: .control, context: context)
        case .message(.pong):
            break
        case .message(let body):
            context.fireChannelRead(Self.wrapInboundOut(InboundMessage(stream: message.stream, body: body)))
        case .unsupportedVersion, .unknownKind:
            counters.frameRejected(.unknownKind)
            if let reply = decoded.errorReply { send(reply, on: message.stream, context: context) }
        }
    }

    private func send(_ envelope: Envelope, on stream: StreamID, context: ChannelHandlerContext) {
        guard let bytes = try? WireCodec.encode(envelope) else { return }
        context.writeAndFlush(Self.wrapOutboundOut(LinkMessage(stream: stream, bytes: bytes)), promise: nil)
    }
}
