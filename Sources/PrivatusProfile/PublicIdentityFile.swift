import Foundation
import PrivatusCore
import PrivatusCrypto

/// `identity.json`: the public identity, readable without the password.
struct PublicIdentityFile: Codable, Equatable {
    static let currentVersion = 1
    static let maximumSize = 16 * 1024

    var version: Int
    var peerId: PeerID
    var identityKey: Data
    var identityDHKey: Data
    var identityDHSignature: Data
    var noiseStaticKey: Data
    var noiseStaticSignature: Data

    init(_ identity: PublicIdentity) {
        self.version = Self.currentVersion
        self.peerId = identity.peerID
        self.identityKey = identity.identityKey.rawRepresentation
        self.identityDHKey = identity.identityDH.publicKey
        self.identityDHSignature = identity.identityDH.signature
        self.noiseStaticKey = identity.noiseStatic.publicKey
        self.noiseStaticSignature = identity.noiseStatic.signature
    }

    /// The identity this file describes, with its bindings verified and its PeerID checked.
    func verifiedIdentity() throws(KeyError) -> PublicIdentity {
        let identity = PublicIdentity(
            identityKey: try IdentityPublicKey(rawRepresentation: identityKey),
            identityDH: KeyBinding(purpose: .identityDH, publicKey: identityDHKey, signature: identityDHSignature),
            noiseStatic: KeyBinding(purpose: .noiseStatic, publicKey: noiseStaticKey, signature: noiseStaticSignature)
        )
        try identity.validate()
        guard identity.peerID == peerId else { throw KeyError.invalidSignature }
        return identity
    }
}

/// `config.json`: settings chosen at `init` (flags > environment > this file > defaults).
public struct ProfileConfig: Codable, Equatable, Sendable {
    static let currentVersion = 1
    static let maximumSize = 64 * 1024

    public var version: Int
    /// The TCP (and UDP) port the node listens on by default.
    public var listenPort: Int
    /// The loopback port of the control API and web UI.
    public var uiPort: Int
    /// Optional limits and timings (docs/CONFIG.md); absent: the built-in default.
    public var maxConnections: Int?
    /// The largest message a link accepts, in bytes.
    public var maxMessageBytes: Int?
    /// Connection attempts allowed at once per address, and regained per second.
    public var connectionBurst: Double?
    public var connectionsPerSecond: Double?
    /// The first retry of an unacknowledged message, and the longest wait between retries.
    public var retryInitialSeconds: Int?
    public var retryMaximumSeconds: Int?
    /// Whether marking messages read tells their sender (default true).
    public var readReceipts: Bool?
    /// How long a message may wait for its receipt before it is `failed` (default 7 days).
    public var deliveryDeadlineSeconds: Int?
    /// How long a gap in a sender's message numbers stays open before the node asks for the
    /// missing messages again, and before it shows what waited behind the gap anyway.
    public var gapResendSeconds: Int?
    public var gapReleaseSeconds: Int?
    /// Whether the bundle record in the DHT carries the node's addresses (default true).
    public var discoverable: Bool?
    /// Loopback addresses exempt from the DHT's subnet caps and rate limits (default false).
    public var dhtExemptLoopback: Bool?
    /// Nodes to join the network through ("host:port"), for the DHT.
    public var bootstrap: [String]?
    public static let maximumBootstrapPeers = 16
    /// Received files: the folder they go to (absolute; default `<profile>/downloads`), the
    /// largest file accepted (default 64 GiB), and the size up to which verified contacts'
    /// offers are accepted without asking (default 0: always ask).
    public var downloadsDirectory: String?
    public var fileMaximumBytes: UInt64?
    public var fileAutoAcceptBytes: UInt64?
    /// The most bytes per second of files sent to one peer (absent: no limit).
    public var fileBandwidthBytesPerSecond: UInt64?

    public init(version: Int, listenPort: Int, uiPort: Int) {
        self.version = version
        self.listenPort = listenPort
        self.uiPort = uiPort
    }

    /// Each optional setting's allowed range; a value outside it makes the file refused.
    public var isValid: Bool {
        func within<T: Comparable>(_ value: T?, _ range: ClosedRange<T>) -> Bool { value.map(range.contains) ?? true }
        return (1...65_535).contains(listenPort) && (1...65_535).contains(uiPort)
            && within(maxConnections, 1...100_000) && within(maxMessageBytes, 512 * 1024...64 << 20)
            && within(connectionBurst, 1...10_000) && within(connectionsPerSecond, 0.01...10_000)
            && within(retryInitialSeconds, 1...86_400) && within(retryMaximumSeconds, 1...7 * 86_400)
            && (retryInitialSeconds ?? 30) <= (retryMaximumSeconds ?? 900)
            && within(deliveryDeadlineSeconds, 1...90 * 86_400)
            && within(gapResendSeconds, 1...3_600) && within(gapReleaseSeconds, 1...86_400)
            && (gapResendSeconds ?? 2) <= (gapReleaseSeconds ?? 60)
            && (bootstrap ?? []).count <= Self.maximumBootstrapPeers
            && (bootstrap ?? []).allSatisfy { $0.utf8.count <= 64 && $0.contains(":") }
            && (downloadsDirectory.map { $0.hasPrefix("/") && $0.utf8.count <= 4096 } ?? true)
            && within(fileMaximumBytes, 0...(1 << 38)) && within(fileAutoAcceptBytes, 0...(1 << 40))
            && within(fileBandwidthBytesPerSecond, 4096...(1 << 40))
    }

    /// Ports drawn at random from 20000–32767, below Linux's ephemeral range so they do not
    /// collide with outgoing connections.
    public static func random() -> ProfileConfig {
        let listen = Int.random(in: 20000...32767)
        var ui = Int.random(in: 20000...32767)
        while ui == listen { ui = Int.random(in: 20000...32767) }
        return ProfileConfig(version: currentVersion, listenPort: listen, uiPort: ui)
    }
}

extension JSONEncoder {
    static let profile: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }()
}
