import Crypto
import NIOCore
import PrivatusCore
import PrivatusCrypto
import PrivatusWire

/// The timing and size settings of every link.
public struct LinkConfiguration: Sendable {
    /// How long a handshake may take before the connection is closed.
    public var handshakeTimeout = TimeAmount.seconds(10)
    /// Quiet time after which a ping is sent.
    public var keepaliveInterval = TimeAmount.seconds(15)
    /// Time without reading anything after which the link is closed (longer than the peer's
    /// keepalive interval, so a live peer never hits it).
    public var readTimeout = TimeAmount.seconds(45)
    /// Streams, windows and queue bounds.
    public var multiplex = MultiplexConfiguration()
    /// The protocol versions offered in the handshake's prologue.
    public var versions = AuthenticatedHandshake.supportedVersions

    public init() {}
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

/// This node's keys for links.
public struct LinkIdentity: Sendable {
    public let identity: IdentityKey
    public let noiseStatic: Curve25519.KeyAgreement.PrivateKey

    public init(identity: IdentityKey, noiseStatic: Curve25519.KeyAgreement.PrivateKey) {
        self.identity = identity
        self.noiseStatic = noiseStatic
    }

    public var peerID: PeerID { identity.publicKey.peerID }
}

/// Builds a link's pipeline on a new channel (on its event loop): one ``LinkHandler`` (framing,
/// Noise, streams and control, passing `ByteBuffer`s), then ``LinkInboundBridge``, which hands
/// received messages to the link's reader. Everything runs on the channel's event loop, and so
/// does the reader (``LinkReader``): a message crosses to another thread only when the handler it
/// goes to runs elsewhere, and a send from the loop is written at once.
enum LinkPipeline {
    /// `expectedPeer` nil: the responder's side.
    static func configure(
        _ channel: any Channel, local: LinkIdentity, expectedPeer: PeerID?, configuration: LinkConfiguration,
        counters: LinkCounters
    ) throws -> Connection {
        let established = channel.eventLoop.makePromise(of: LinkPeer.self)
        let gate = SendGate(
            high: configuration.multiplex.sendHighWatermark, low: configuration.multiplex.sendLowWatermark)
        let handshake: AuthenticatedHandshake
        if let expectedPeer {
            handshake = AuthenticatedHandshake(
                initiator: local.identity, noiseStatic: local.noiseStatic, expectedPeer: expectedPeer,
                versions: configuration.versions)
        } else {
            handshake = AuthenticatedHandshake(
                responder: local.identity, noiseStatic: local.noiseStatic, versions: configuration.versions)
        }
        // Reads of up to four full link frames (65,537 bytes each): with NIO's default of 64 KiB
        // every full frame spans two reads and must be copied together. The adaptive allocator
        // still starts small and shrinks again when reads are small (idle links stay small).
        try channel.syncOptions?.setOption(
            ChannelOptions.recvAllocator,
            value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 4 * (2 + 65_535)))
        // The socket takes up to eight full frames per write while a stream sends bulk data
        // (NIO's default of 64 KiB made every 64 KiB frame a write system call of its own and a
        // writability change); an idle link holds nothing there.
        try channel.syncOptions?.setOption(
            ChannelOptions.writeBufferWaterMark, value: .init(low: 256 << 10, high: 512 << 10))
        try channel.pipeline.syncOperations.addHandler(
            LinkHandler(
                handshake: handshake, isInitiator: expectedPeer != nil, established: established,
                configuration: configuration, counters: counters, gate: gate))
        // Whole messages waiting for the node's handler: at most a few (each up to the maximum
        // message size) before the link stops reading from its socket.
        let inbound = LinkInbound(channel: channel)
        try channel.pipeline.syncOperations.addHandler(LinkInboundBridge(inbound: inbound))
        return Connection(channel: channel, inbound: inbound, established: established.futureResult, gate: gate)
    }

    /// A new connection: its channel, what it receives, the handshake's outcome to wait for, its
    /// send gate.
    struct Connection: Sendable {
        let channel: any Channel
        let inbound: LinkInbound
        let established: EventLoopFuture<LinkPeer>
        let gate: SendGate
    }
}
