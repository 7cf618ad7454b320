/// The streams multiplexed over one link, by the id byte that starts every ``StreamFrame``.
///
/// Each stream carries its own sequence of messages, reassembled independently, so a large
/// transfer on ``bulk`` does not hold back ``chat``. A frame naming any other id is refused
/// with ``WireError/unknownStream``.
public enum StreamID: UInt8, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    /// Link control: pings, error replies, flow control of the link itself.
    case control = 0
    /// Chat messages and receipts.
    case chat = 1
    /// Large transfers (files, history), interleaved with the other streams.
    case bulk = 2
    /// DHT requests and replies over the link.
    case dht = 3

    public var description: String {
        switch self {
        case .control: "control"
        case .chat: "chat"
        case .bulk: "bulk"
        case .dht: "dht"
        }
    }
}
