import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusDHT
import PrivatusStore
import PrivatusWire
import Synchronization

/// `GET /api/v1/dht`: the node's DHT endpoint.
public struct DHTStatusView: Codable, Sendable, Equatable, ResponseEncodable {
    /// The node's DHT ID (random, not the PeerID), 64 hex digits.
    public var nodeId: String
    /// The UDP address it answers on.
    public var address: String
    /// Nodes in its routing table.
    public var tableSize: Int
    /// Records it keeps for others.
    public var records: Int
    /// Whether its bundle record was stored by at least one node.
    public var published: Bool
    /// Whether its presence record of the current epoch was stored by at least one node (under
    /// the secret it last published with: after a renewal, until the next publish ≤ 5 s later).
    public var presencePublished: Bool
}

/// `GET /api/v1/dht/lookup/{peer}`: the bundle record of a PeerID, found through the DHT.
public struct DHTLookupView: Codable, Sendable, Equatable, ResponseEncodable {
    public var peerId: String
    public var found: Bool
    /// The record's sequence number (0 when not found).
    public var sequence: UInt64
    /// Where the node listens, if its user is discoverable.
    public var addresses: [String]
    /// Requests sent, sequential rounds of requests (of the path that brought the record), and
    /// the time the lookup took.
    public var requests: Int
    public var hops: Int
    public var ms: Double
}

/// The node's part in the DHT (issue 8): its endpoint, its key (kept in the database, so its ID
/// survives restarts), bootstrap, and its bundle record published at start.
final class NodeDHT: Sendable {
    let service: DHTService
    let published = Mutex(false)
    /// When the bundle record was last stored by at least one node (Unix s; 0: never).
    let publishedAt = Mutex<UInt64>(0)
    /// The routing table's size when the record was last stored, and the value stored.
    let tableAtPublishing = Mutex(0)
    let publishedValue = Mutex<[UInt8]>([])
    /// The bootstrap addresses, resolved at start (tried again while the table is empty).
    let bootstrapAddresses = Mutex<[DHTAddress]>([])
    /// How often the bundle record is stored again (it lives 7 days).
    static let republishInterval: UInt64 = 86_400
    /// How many recently seen nodes are kept in the database to rejoin through after a restart.
    static let savedPeerCount = 16
    static let savedPeersSetting = "dht-peers"

    init(service: DHTService) {
        self.service = service
    }

    /// The node's DHT key: read from the store, or drawn and stored on first use.
    static func key(in store: Store) throws -> DHTKey {
        if let seed = try store.setting("dht-key"), let key = DHTKey(seed: seed) { return key }
        let key = DHTKey()
        try store.setSetting("dht-key", to: key.seed)
        return key
    }

    /// Starts the endpoint on UDP at `host` and the port number of the node's first TCP listen
    /// address.
    static func start(
        store: Store, host: String, port: Int, exemptLoopback: Bool, logger: Logger
    ) async throws -> NodeDHT {
        var configuration = DHTService.Configuration()
        configuration.exemptLoopback = exemptLoopback
        let service = try await DHTService.start(
            key: try key(in: store), host: host, port: port, configuration: configuration, logger: logger)
        let metrics = LookupMetrics()
        await service.observeLookups { kind, found, duration, _ in metrics.record(kind, found: found, duration) }
        return NodeDHT(service: service)
    }

    /// Keeps the nodes heard from most recently in `store`, to rejoin through them after a
    /// restart (last known good peers); nothing is written while the table is empty, so a node
    /// that lost its network keeps the list it had.
    func savePeers(in store: Store) async throws {
        let addresses = await service.recentlySeenAddresses(Self.savedPeerCount)
        guard !addresses.isEmpty else { return }
        try store.setSetting(
            Self.savedPeersSetting, to: Array(addresses.map(\.description).joined(separator: "\n").utf8))
    }

    /// The nodes saved by ``savePeers(in:)`` ("host:port"; at most ``savedPeerCount`` are read).
    static func savedPeers(in store: Store) -> [String] {
        guard let bytes = try? store.setting(savedPeersSetting), let text = String(validating: bytes, as: UTF8.self)
        else { return [] }
        return text.split(separator: "\n").prefix(savedPeerCount).map(String.init)
    }

    /// Joins through `bootstrap` ("host:port"; names resolved on NIO's thread pool), then
    /// publishes the bundle record.
    func join(bootstrap: [String], bundle: DHTRecord?, logger: Logger) async {
        var addresses: [DHTAddress] = []
        for entry in bootstrap {
            guard let target = HostPort(parsing: entry) else { continue }
            let socket: SocketAddress?
            if let literal = target.socketAddress {
                socket = literal
            } else {
                socket = try? await NIOThreadPool.singleton.runIfActive {
                    try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
                }
            }
            if let socket, let address = DHTAddress(socket), !addresses.contains(address) { addresses.append(address) }
        }
        bootstrapAddresses.withLock { $0 = addresses }
        if !addresses.isEmpty { await service.bootstrap(from: addresses) }
        if let bundle { await publish(bundle, logger: logger) }
    }

    func publish(_ bundle: DHTRecord, logger: Logger) async {
        let tableSize = await service.tableSize
        let stored = await service.publish(bundle)
        if stored > 0 {
            published.withLock { $0 = true }
            publishedAt.withLock { $0 = UInt64(Date().timeIntervalSince1970) }
            tableAtPublishing.withLock { $0 = tableSize }
            publishedValue.withLock { $0 = bundle.value }
        }
        logger.debug("bundle record published", metadata: ["stored": "\(stored)"])
    }

    /// Whether `bundle` should be published (again) now: it differs from the one stored, or it
    /// was never stored yet (the table
    /// may have been empty at start: the first node of a network), stored a day ago, or stored
    /// when the routing table held less than half of what it holds now (the nodes closest to the
    /// record's key then may not be the closest now: a young network).
    func needsPublishing(_ bundle: DHTRecord) async -> Bool {
        // The bundle changed (a signed prekey rotated): the old record would refuse sessions.
        if publishedValue.withLock({ $0 }) != bundle.value { return true }
        let last = publishedAt.withLock { $0 }
        if last == 0 || UInt64(Date().timeIntervalSince1970) >= last + Self.republishInterval { return true }
        let then = tableAtPublishing.withLock { $0 }
        return await service.tableSize >= 2 * max(then, 1)
    }

    /// Periodic upkeep: joins again while the table is empty (the bootstrap nodes were away),
    /// refreshes idle buckets.
    func maintain() async {
        if await service.tableSize == 0 {
            let addresses = bootstrapAddresses.withLock { $0 }
            if !addresses.isEmpty { await service.bootstrap(from: addresses) }
        }
        await service.refresh()
    }

    func status() async -> DHTStatusView {
        DHTStatusView(
            nodeId: Hex.encode(service.nodeID.bytes), address: service.localAddress.description,
            tableSize: await service.tableSize, records: await service.recordCount,
            published: published.withLock { $0 },
            presencePublished: presencePublished.withLock { $0 }?.epoch == PresenceSecret.epoch(at: Self.unixSeconds()))
    }

    func lookup(_ peer: PeerID) async -> DHTLookupView {
        let started = ContinuousClock.now
        let (record, requests, hops) = await service.findValueCounting(DHTRecord.bundleKey(of: peer))
        let elapsed = ContinuousClock.now - started
        var addresses: [String] = []
        if let record, let value = try? Privatus_Dht_V1_BundleValue(serializedBytes: record.value) {
            addresses = Array(value.addresses.prefix(Contact.maximumAddresses))
        }
        return DHTLookupView(
            peerId: peer.hex, found: record != nil, sequence: record?.sequence ?? 0, addresses: addresses,
            requests: requests, hops: hops, ms: elapsed.milliseconds)
    }

    /// Where `contact` is, from the DHT: the addresses of its presence record of today or
    /// yesterday (read with the secret it gave in its hello, signed by its identity), then
    /// those of its bundle record (a discoverable user's), at most 8 of each and IP literals
    /// only (an address from the DHT never makes this node resolve a name); nil while this
    /// node's table is empty (not joined: nothing was looked up).
    func addresses(of contact: Contact) async -> [String]? {
        guard await service.tableSize > 0 else { return nil }
        var found: [String] = []
        if let secret = PresenceSecret(bytes: contact.presenceSecret),
            let identity = try? IdentityPublicKey(rawRepresentation: contact.identityKey),
            identity.peerID == contact.peerID
        {
            let today = PresenceSecret.epoch(at: Self.unixSeconds())
            for epoch in today > 0 ? [today, today - 1] : [today] {
                let accept = { (record: DHTRecord) in
                    Self.presence(in: record, secret: secret, epoch: epoch, identity: identity) != nil
                }
                guard let record = await service.findValue(secret.recordKey(epoch: epoch), accepting: accept),
                    let value = Self.presence(in: record, secret: secret, epoch: epoch, identity: identity)
                else { continue }
                found = Self.literals(value.addresses)
                break
            }
        }
        if let record = await service.findValue(DHTRecord.bundleKey(of: contact.peerID)),
            let value = try? Privatus_Dht_V1_BundleValue(serializedBytes: record.value)
        {
            found += Self.literals(value.addresses).filter { !found.contains($0) }
        }
        return found
    }

    /// At most ``Contact/maximumAddresses`` of `addresses` that are IP literals with a port.
    static func literals(_ addresses: [String]) -> [String] {
        Array(addresses.filter { HostPort(parsing: $0)?.socketAddress != nil }.prefix(Contact.maximumAddresses))
    }

    /// What `record` says, if it is `secret`'s record of `epoch` and what it says is signed by
    /// `identity` for that record's key.
    static func presence(
        in record: DHTRecord, secret: PresenceSecret, epoch: UInt64, identity: IdentityPublicKey
    ) -> Privatus_Dht_V1_PresenceValue? {
        guard let sealed = secret.open(record, epoch: epoch),
            let signed = try? Privatus_Dht_V1_SignedPresence(serializedBytes: sealed),
            identity.isValidSignature(
                signed.identitySignature, over: record.key.bytes + Array(signed.body), purpose: .presenceValue)
        else { return nil }
        return try? Privatus_Dht_V1_PresenceValue(serializedBytes: signed.body)
    }

    /// The presence secret and epoch of the presence record last stored, and the routing
    /// table's size then.
    let presencePublished = Mutex<(secret: [UInt8], epoch: UInt64, table: Int)?>(nil)

    /// Publishes the presence record of the current epoch (where the node listens, signed by
    /// the identity, sealed under `secret`) unless it was stored already under this secret
    /// since the routing table last doubled (the closest nodes to its key change while a
    /// network is young).
    func publishPresence(
        secret: PresenceSecret, addresses: [String], noiseStatic: [UInt8], identity: IdentityKey, logger: Logger
    ) async {
        let epoch = PresenceSecret.epoch(at: Self.unixSeconds())
        let tableSize = await service.tableSize
        if let last = presencePublished.withLock({ $0 }), last.secret == secret.bytes, last.epoch == epoch,
            tableSize < 2 * max(last.table, 1)
        {
            return
        }
        var value = Privatus_Dht_V1_PresenceValue()
        value.addresses = Array(addresses.prefix(Hello.maximumAddresses))
        value.noiseStatic = Data(noiseStatic)
        let key = secret.recordKey(epoch: epoch)
        guard let body = try? Array(value.serializedBytes() as [UInt8]) else { return }
        var signed = Privatus_Dht_V1_SignedPresence()
        signed.body = Data(body)
        signed.identitySignature = identity.signature(over: key.bytes + body, purpose: .presenceValue)
        guard let sealed = try? Array(signed.serializedBytes() as [UInt8]),
            let record = try? secret.record(value: sealed, epoch: epoch, sequence: Self.unixMilliseconds())
        else { return }
        let stored = await service.publish(record)
        if stored > 0 { presencePublished.withLock { $0 = (secret.bytes, epoch, tableSize) } }
        logger.debug("presence record published", metadata: ["stored": "\(stored)"])
    }

    static func unixSeconds() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970)) }

    /// The node's bundle record: its prekey bundle without a one-time prekey and, when
    /// `discoverable`, its advertised addresses; signed by the identity, valid a week.
    static func bundleRecord(
        bundle: PrekeyBundle, addresses: [String], discoverable: Bool, identity: IdentityKey
    ) -> DHTRecord? {
        var value = Privatus_Dht_V1_BundleValue()
        var wire = bundle.wire
        wire.clearOneTimePrekey()
        value.bundle = wire
        if discoverable { value.addresses = Array(addresses.prefix(Hello.maximumAddresses)) }
        guard let bytes = try? Array(value.serializedBytes() as [UInt8]) else { return nil }
        let now = UInt64(Date().timeIntervalSince1970)
        // The sequence: the signing time in ms, so a node restarted within the same second
        // still publishes a newer record.
        return try? DHTRecord.sign(
            kind: .bundle, sequence: unixMilliseconds(), expires: now + 7 * 86_400, value: bytes, with: identity)
    }

    static func unixMilliseconds() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1_000)) }

}

/// The DHT's lookups as metrics: how many, by kind (`node`, `value`) and outcome (`found`: a
/// value lookup brought a record, a node lookup an answer), and how long they took.
struct LookupMetrics: Sendable {
    let counters: [String: Counter] = Dictionary(
        uniqueKeysWithValues: ["node", "value"].flatMap { kind in
            ["found", "missing"].map { result in
                (
                    "\(kind) \(result)",
                    Counter(label: "privatus_dht_lookups_total", dimensions: [("kind", kind), ("result", result)])
                )
            }
        })
    let duration = Timer(label: "privatus_dht_lookup_seconds")

    func record(_ kind: DHTService.LookupKind, found: Bool, _ took: Duration) {
        counters["\(kind.rawValue) \(found ? "found" : "missing")"]?.increment()
        duration.recordNanoseconds(took.nanoseconds)
    }
}
