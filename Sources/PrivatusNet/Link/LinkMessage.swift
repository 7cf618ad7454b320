import Foundation
import PrivatusCore
import PrivatusCrypto
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
