import NIOConcurrencyHelpers
import NIOCore

/// Hands received datagrams to the service (on the channel's event loop; the service is an
/// actor).
final class DatagramInbox: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    /// The most datagrams waiting for the service at once; past it they are dropped (their
    /// senders retry), so a flood cannot pile up work in memory.
    static let maximumWaiting = 1_024
    /// Set once the service exists; datagrams before that are dropped (their senders retry).
    /// The closure sits in a struct: a bare closure in the generic box was re-wrapped in two
    /// reabstraction thunks by every `withLockedValue { $0 }` (the inout write-back), so each
    /// datagram ran through a chain as long as the datagrams before it — CPU growing with uptime
    /// and, in the end, a stack overflow.
    let receiver = NIOLockedValueBox<Receiver?>(nil)
    let waiting = NIOLockedValueBox(0)

    struct Receiver: Sendable {
        let deliver: @Sendable ([UInt8], DHTAddress) -> Void
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let source = DHTAddress(envelope.remoteAddress), let receiver = receiver.withLockedValue({ $0 })
        else { return }
        let admitted = waiting.withLockedValue { count in
            guard count < Self.maximumWaiting else { return false }
            count += 1
            return true
        }
        guard admitted else { return }
        receiver.deliver(Array(envelope.data.readableBytesView), source)
    }

    /// A socket error (an ICMP-reported failure of an earlier send) is not the channel's end.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {}

    /// A datagram handed over has been handled.
    func done() { waiting.withLockedValue { $0 -= 1 } }
}

extension DHTAddress {
    /// The address of a socket, if it is IPv4 or IPv6.
    public init?(_ socket: SocketAddress) {
        guard let port = socket.port, let port = UInt16(exactly: port) else { return nil }
        switch socket {
        case .v4(let address):
            var raw = address.address.sin_addr
            self.init(ip: withUnsafeBytes(of: &raw) { Array($0) }, port: port)
        case .v6(let address):
            var raw = address.address.sin6_addr
            self.init(ip: withUnsafeBytes(of: &raw) { Array($0) }, port: port)
        default:
            return nil
        }
    }

    /// The socket address to send to.
    public var socketAddress: SocketAddress? {
        let text: String
        if isIPv4 {
            text = ip.map(String.init).joined(separator: ".")
        } else {
            text = stride(from: 0, to: 16, by: 2).map { String(UInt16(ip[$0]) << 8 | UInt16(ip[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
        return try? SocketAddress(ipAddress: text, port: Int(port))
    }
}
