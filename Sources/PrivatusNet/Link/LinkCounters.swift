import CoreMetrics

/// The link layer's metrics (swift-metrics): what the dashboard and `/metrics` show about
/// connections. Labels and dimensions never carry a PeerID or an address.
public final class LinkCounters: Sendable {
    /// Why a handshake failed.
    public enum HandshakeFailure: String, Sendable, CaseIterable {
        case timeout
        case protocolError = "protocol"
        case unexpectedPeer = "unexpected_peer"
    }

    /// Why a frame or connection was refused.
    public enum Rejection: String, Sendable, CaseIterable {
        /// A zero-length link frame, an unparsable stream frame or message.
        case malformed
        /// A message of another version or an unknown kind (answered, not passed on).
        case unknownKind = "unknown_kind"
        /// More bytes buffered than a frame may have.
        case oversized
        /// A transport message that did not decrypt.
        case decryption
        /// A message over the configured maximum.
        case messageTooLarge = "message_too_large"
        /// A peer that did not read while its queue grew past the bound.
        case slowReader = "slow_reader"
        /// A connection attempt over the per-address rate.
        case rateLimited = "rate_limited"
        /// A connection refused at the connection limit.
        case connectionLimit = "connection_limit"
    }

    let handshakesOK: Counter
    let handshakeFailures: [HandshakeFailure: Counter]
    let rejections: [Rejection: Counter]
    let bytesIn: Counter
    let bytesOut: Counter
    let frames: (in: Counter, out: Counter)
    /// Open connections.
    let connections: Meter
    /// Bytes waiting in outbound queues, over all links.
    let queuedBytes: Meter

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        handshakesOK = Counter(
            label: "privatus_link_handshakes_total", dimensions: [("result", "ok")], factory: factory)
        handshakeFailures = Dictionary(
            uniqueKeysWithValues: HandshakeFailure.allCases.map { reason in
                (
                    reason,
                    Counter(
                        label: "privatus_link_handshakes_total",
                        dimensions: [("result", "failed"), ("reason", reason.rawValue)], factory: factory)
                )
            })
        rejections = Dictionary(
            uniqueKeysWithValues: Rejection.allCases.map { reason in
                (
                    reason,
                    Counter(
                        label: "privatus_link_rejected_total", dimensions: [("reason", reason.rawValue)],
                        factory: factory)
                )
            })
        bytesIn = Counter(label: "privatus_link_bytes_total", dimensions: [("direction", "in")], factory: factory)
        bytesOut = Counter(label: "privatus_link_bytes_total", dimensions: [("direction", "out")], factory: factory)
        frames = (
            Counter(label: "privatus_link_frames_total", dimensions: [("direction", "in")], factory: factory),
            Counter(label: "privatus_link_frames_total", dimensions: [("direction", "out")], factory: factory)
        )
        connections = Meter(label: "privatus_link_connections", factory: factory)
        queuedBytes = Meter(label: "privatus_link_queued_bytes", factory: factory)
    }

    func handshakeSucceeded() { handshakesOK.increment() }
    func handshakeFailed(_ reason: HandshakeFailure) { handshakeFailures[reason]?.increment() }
    func frameRejected(_ reason: Rejection) { rejections[reason]?.increment() }

    func framesIn(bytes: Int) {
        frames.in.increment()
        bytesIn.increment(by: bytes)
    }

    func framesOut(bytes: Int) {
        frames.out.increment()
        bytesOut.increment(by: bytes)
    }
}
