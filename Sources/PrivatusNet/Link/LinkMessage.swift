import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusWire

/// A message on one stream of a link.
public struct LinkMessage: Sendable, Hashable {
    public var stream: StreamID
    /// The encoded message.
    public var bytes: [UInt8] {
        get { headroom == 0 ? storage : Array(storage[headroom...]) }
        set {
            storage = newValue
            headroom = 0
        }
    }
    /// The message behind `headroom` bytes the link may overwrite: a message encoded with
    /// ``WireCodec/encodeBehindFrameHeader(_:maxBytes:)`` is sealed where it lies.
    var storage: [UInt8]
    /// 0, or ``WireLimits/frameHeaderBytes``.
    var headroom: Int
    /// Whether the sender entered the link's ``SendGate`` with it (messages the link makes
    /// itself, pongs and error replies, do not).
    var gated = false

    public init(stream: StreamID, bytes: [UInt8]) {
        self.stream = stream
        self.storage = bytes
        self.headroom = 0
    }

    /// A message encoded with ``WireCodec/encodeBehindFrameHeader(_:maxBytes:)``.
    init(stream: StreamID, behindFrameHeader storage: [UInt8]) {
        precondition(storage.count >= WireLimits.frameHeaderBytes, "the frame header's room is missing")
        self.stream = stream
        self.storage = storage
        self.headroom = WireLimits.frameHeaderBytes
    }

    /// The message's length (without the headroom).
    var count: Int { storage.count - headroom }

    public static func == (lhs: LinkMessage, rhs: LinkMessage) -> Bool {
        lhs.stream == rhs.stream && lhs.gated == rhs.gated
            && lhs.storage[lhs.headroom...] == rhs.storage[rhs.headroom...]
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(stream)
        hasher.combine(gated)
        hasher.combine(count)
        storage[headroom...].withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// A message received on a link, decoded.
public struct InboundMessage: Sendable, Equatable {
    public var stream: StreamID
    public var body: Envelope.Body
}

/// Who is at the other end of an established link.
public struct LinkPeer: Sendable, Hashable {
    /// The peer's authenticated PeerID.
    public let peerID: PeerID
    /// The identity key that signed the peer's Noise static key.
    public let identity: IdentityPublicKey
    /// The Noise handshake hash, the same at both ends (channel binding).
    public let handshakeHash: Data
}
