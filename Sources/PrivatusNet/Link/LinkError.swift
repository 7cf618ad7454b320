/// Why a link was refused or closed. No case carries a peer's identity, an address or bytes.
public enum LinkError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A link frame with a zero length, or a frame the stream layer cannot parse.
    case malformedFrame
    /// The handshake did not finish in time.
    case handshakeTimeout
    /// The handshake failed (the Noise reason is counted, not carried).
    case handshakeFailed
    /// The dialled node authenticated as another PeerID.
    case unexpectedPeer
    /// A transport message did not decrypt: the link is no longer trustworthy.
    case decryptionFailed
    /// A message exceeded the configured maximum.
    case messageTooLarge
    /// The peer did not read: its outbound queue passed the bound.
    case slowReader
    /// The link is closed.
    case closed
    /// Too many connection attempts from or to this address; try later.
    case rateLimited
    /// The node is at its connection limit and nothing idle could be evicted.
    case connectionLimit
    /// Data was written before the handshake finished.
    case notEstablished

    public var description: String {
        switch self {
        case .malformedFrame: "a link frame is malformed"
        case .handshakeTimeout: "the handshake did not finish in time"
        case .handshakeFailed: "the handshake failed"
        case .unexpectedPeer: "the node answering is not the one dialled"
        case .decryptionFailed: "a link message could not be decrypted"
        case .messageTooLarge: "a message exceeds the maximum size"
        case .slowReader: "the peer does not read; its queue is full"
        case .closed: "the link is closed"
        case .rateLimited: "too many connection attempts; try later"
        case .connectionLimit: "the node is at its connection limit"
        case .notEstablished: "the link is not established yet"
        }
    }
}
