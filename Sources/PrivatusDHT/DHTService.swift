import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PrivatusCore

/// The node's DHT endpoint: one UDP socket (SwiftNIO `DatagramBootstrap`), one datagram per
/// request or reply (``DHTCodec``), answering others from its ``RoutingTable`` and
/// ``RecordStore`` and running its own lookups with the ``Lookup`` state machine.
///
/// Rules (docs/PROTOCOL.md, "DHT"): a datagram larger than the maximum is cut by the receive
/// buffer and refused; a request from a source that has not echoed a valid cookie is answered
/// with a cookie reply no larger than it, and its signature is not checked; a request that
/// echoes one must be signed, and is answered, signed; each source address has a token bucket
/// (loopback exempt when configured); a reply is taken only for an outstanding request id, from
/// the address asked, signed by the node asked (when its ID is known); an unknown node that
/// sends a verified request is pinged and enters the table only if it answers.
public actor DHTService {
    public struct Configuration: Sendable {
        public var table = RoutingTable.Configuration()
        public var lookup = Lookup.Configuration()
        public var records = RecordStore.Configuration()
        /// Requests a source address may send per second, and at once.
        public var requestsPerSecond = 20.0
        public var burst = 60.0
        /// Loopback sources are exempt from rate limits and subnet caps (local networks, tests).
        public var exemptLoopback = false {
            didSet {
                table.exemptLoopback = exemptLoopback
                records.exemptLoopback = exemptLoopback
            }
        }
        /// Sources whose buckets are remembered at most.
        public var maximumTrackedSources = 10_000

        public init() {}
    }

    /// What a lookup found.
    public struct LookupResult: Sendable {
        /// The closest nodes that answered, closest first.
        public var closest: [DHTPeer]
        public var hops: Int
        public var requests: Int
    }

    /// Why a request failed.
    public enum RequestError: Error, Sendable, Hashable {
        case timedOut
        case refused
        case stopped
    }

    struct Pending {
        var address: DHTAddress
        var expected: DHTNodeID?
        var continuation: CheckedContinuation<(DHTMessage, DHTPeer), any Error>
    }

    public let configuration: Configuration
    public nonisolated let key: DHTKey
    public nonisolated let localAddress: DHTAddress
    public nonisolated var nodeID: DHTNodeID { key.nodeID }
    let channel: any Channel
    let logger: Logger
    let clock = ContinuousClock()
    let started: ContinuousClock.Instant
    var table: RoutingTable
    var records: RecordStore
    var cookies: CookieJar
    /// Cookies other nodes handed this one, by their address.
    var theirCookies: [DHTAddress: [UInt8]] = [:]
    var pending: [UInt64: Pending] = [:]
    var buckets: [[UInt8]: (tokens: Double, at: UInt64)] = [:]
    var pinging: Set<DHTNodeID> = []
    var pingsBySource: [[UInt8]: Int] = [:]
    var random = SystemRandomNumberGenerator()
    /// Nodes in the routing table.
    public var tableSize: Int { table.count }

    /// Where the `count` nodes heard from most recently answer: what a node keeps to rejoin
    /// without a bootstrap node after a restart.
    public func recentlySeenAddresses(_ count: Int) -> [DHTAddress] {
        table.mostRecentlySeen(count).map(\.address)
    }
    /// Records kept for others.
    public var recordCount: Int { records.count }
    /// Datagrams refused (malformed, too large, bad signature, rate limited), for the figures.
    public private(set) var refused = 0

    init(
        key: DHTKey, channel: any Channel, localAddress: DHTAddress, configuration: Configuration, logger: Logger
    ) {
        self.key = key
        self.channel = channel
        self.localAddress = localAddress
        self.configuration = configuration
        self.logger = logger
        started = clock.now
        table = RoutingTable(local: key.nodeID, configuration: configuration.table)
        records = RecordStore(configuration: configuration.records)
        cookies = CookieJar(now: 0)
    }

    /// Binds the UDP socket at `host:port` (0: any free port) and starts answering.
    public static func start(
        key: DHTKey, host: String, port: Int, configuration: Configuration = Configuration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "privatus.dht")
    ) async throws -> DHTService {
        let inbox = DatagramInbox()
        let channel = try await DatagramBootstrap(group: group)
            // One byte more than the largest datagram: a larger one arrives cut, and is refused.
            .channelOption(
                ChannelOptions.recvAllocator,
                value: FixedSizeRecvByteBufferAllocator(capacity: DHTCodec.maximumDatagramBytes + 1)
            )
            .channelInitializer { channel in channel.pipeline.addHandler(inbox) }
            .bind(host: host, port: port).get()
        guard let bound = channel.localAddress, let local = DHTAddress(bound) else {
            try await channel.close()
            throw RequestError.refused
        }
        let service = DHTService(
            key: key, channel: channel, localAddress: local, configuration: configuration, logger: logger)
        channel.closeFuture.whenComplete { _ in logger.debug("DHT socket closed") }
        let receiver = DatagramInbox.Receiver { bytes, source in
            Task {
                await service.handle(bytes, from: source)
                inbox.done()
            }
        }
        inbox.receiver.withLockedValue { $0 = receiver }
        return service
    }

    /// Closes the socket; outstanding requests fail.
    public func stop() async {
        for (_, request) in pending { request.continuation.resume(throwing: RequestError.stopped) }
        pending.removeAll()
        try? await channel.close()
    }

    /// Milliseconds since the service started (the state machines' clock).
    func now() -> UInt64 {
        let elapsed = clock.now - started
        return UInt64(elapsed.components.seconds) * 1_000
            + UInt64(elapsed.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: - Answering

    func handle(_ bytes: [UInt8], from source: DHTAddress) async {
        let received: ReceivedDatagram
        do {
            received = try DHTCodec.decode(bytes)
        } catch {
            refused += 1
            logger.debug("DHT datagram refused", metadata: ["error": "\(error)"])
            return
        }
        if received.packet.message.isRequest {
            await answer(received, size: bytes.count, from: source)
        } else {
            settle(received, from: source)
        }
    }

    func answer(_ received: ReceivedDatagram, size: Int, from source: DHTAddress) async {
        let now = now()
        guard allow(source, now: now) else {
            refused += 1
            return
        }
        if cookies.rotateIfDue(now: now) {
            records.expire(now: Self.unixSeconds())
            if theirCookies.count > configuration.maximumTrackedSources { theirCookies.removeAll() }
        }
        let packet = received.packet
        guard !packet.cookie.isEmpty, cookies.accepts(packet.cookie, from: source) else {
            // Not verified yet: the cookie to echo, no larger than the request, unsigned.
            let reply = DHTPacket(requestID: packet.requestID, message: .cookie(cookies.cookie(for: source)))
            if let bytes = try? DHTCodec.encode(reply, signedBy: nil),
                bytes.count
                    <= CookieJar.replyLimit(
                        requestBytes: size, sourceVerified: false, maximum: DHTCodec.maximumDatagramBytes)
            {
                transmit(bytes, to: source)
            }
            return
        }
        guard let sender = received.verifiedSender() else {
            refused += 1
            return
        }
        let message: DHTMessage
        switch packet.message {
        case .ping:
            message = .pong(observed: source)
        case .findNode(let target):
            message = .nodes(table.closest(to: target, count: configuration.lookup.k))
        case .findValue(let key):
            message = .value(
                records.get(key, now: Self.unixSeconds()), closer: table.closest(to: key, count: configuration.lookup.k)
            )
        case .store(let record):
            do {
                try records.put(record, from: source, now: Self.unixSeconds())
                message = .stored(.stored)
            } catch .notNewer {
                message = .stored(.notNewer)
            } catch .overQuota, .full {
                message = .stored(.overQuota)
            } catch {
                message = .stored(.invalid)
            }
        default:
            return
        }
        if let bytes = try? DHTCodec.encode(DHTPacket(requestID: packet.requestID, message: message), signedBy: key) {
            transmit(bytes, to: source)
        }
        // A node not in the table enters only by answering a ping of ours.
        let peer = DHTPeer(id: sender, address: source)
        if !table.contains(sender) { verify(peer) }
    }

    /// Pings `peer` in the background and adds it to the table if it answers. A newcomer's ping
    /// waits for room (64 at once, 4 per source IP); a full bucket's ping of its oldest node
    /// (`bucket`) always goes, or the bucket would never decide.
    func verify(_ peer: DHTPeer, bucket: Bool = false) {
        guard peer.id != nodeID, !pinging.contains(peer.id) else { return }
        if !bucket {
            guard pinging.count < 64, pingsBySource[peer.address.ip, default: 0] < 4 else { return }
        }
        pinging.insert(peer.id)
        pingsBySource[peer.address.ip, default: 0] += 1
        Task {
            let answered = try? await self.request(.ping, to: peer.address, expecting: peer.id)
            self.verified(peer, answered: answered != nil)
        }
    }

    func verified(_ peer: DHTPeer, answered: Bool) {
        pinging.remove(peer.id)
        pingsBySource[peer.address.ip, default: 1] -= 1
        if pingsBySource[peer.address.ip] == 0 { pingsBySource[peer.address.ip] = nil }
        if answered { heard(peer) } else { table.failed(peer.id, now: now()) }
    }

    /// `peer` answered one of our requests: into the table, pinging a full bucket's oldest node
    /// when the table asks.
    func heard(_ peer: DHTPeer) {
        if case .waiting(let oldest?) = table.heard(from: peer, now: now()) { verify(oldest, bucket: true) }
    }

    /// Takes a token from `source`'s bucket.
    func allow(_ source: DHTAddress, now: UInt64) -> Bool {
        if configuration.exemptLoopback && source.isLoopback { return true }
        // An IPv6 source counts by its /64 (one host gets a whole /64).
        let key = source.isIPv4 ? source.ip : Array(source.ip.prefix(8))
        if buckets.count >= configuration.maximumTrackedSources, buckets[key] == nil {
            // Forget the sources that have regained a full bucket (idle), never the busy ones.
            let idle = buckets.filter {
                $0.value.tokens + Double(now - min(now, $0.value.at)) / 1_000 * configuration.requestsPerSecond
                    >= configuration.burst
            }.map(\.key)
            for stale in idle { buckets[stale] = nil }
            if buckets.count >= configuration.maximumTrackedSources { return false }
        }
        var bucket = buckets[key] ?? (configuration.burst, now)
        let regained = Double(now - min(now, bucket.at)) / 1_000 * configuration.requestsPerSecond
        bucket = (min(configuration.burst, bucket.tokens + regained), now)
        guard bucket.tokens >= 1 else {
            buckets[key] = bucket
            return false
        }
        bucket.tokens -= 1
        buckets[key] = bucket
        return true
    }

    // MARK: - Asking

    /// A reply: taken only for an outstanding request, from the address asked, signed (a cookie
    /// reply excepted) by the node asked.
    func settle(_ received: ReceivedDatagram, from source: DHTAddress) {
        let packet = received.packet
        guard let request = pending[packet.requestID], request.address == source else {
            refused += 1
            return
        }
        if case .cookie(let cookie) = packet.message {
            pending[packet.requestID] = nil
            theirCookies[source] = cookie
            request.continuation.resume(throwing: CookieNeeded())
            return
        }
        guard let sender = received.verifiedSender(), request.expected.map({ $0 == sender }) ?? true else {
            refused += 1
            return
        }
        pending[packet.requestID] = nil
        request.continuation.resume(returning: (packet.message, DHTPeer(id: sender, address: source)))
    }

    struct CookieNeeded: Error {}

    /// Sends `message` to `address` and waits for the reply (fetching the node's cookie first
    /// when this node has none for it). `expecting`: the node ID that must sign the reply.
    public func request(
        _ message: DHTMessage, to address: DHTAddress, expecting: DHTNodeID? = nil
    ) async throws
        -> (DHTMessage, DHTPeer)
    {
        for _ in 0..<2 {
            do {
                return try await send(message, to: address, expecting: expecting)
            } catch is CookieNeeded {
                continue
            }
        }
        throw RequestError.refused
    }

    func send(
        _ message: DHTMessage, to address: DHTAddress, expecting: DHTNodeID?
    ) async throws -> (
        DHTMessage, DHTPeer
    ) {
        let id = UInt64.random(in: 1...UInt64.max, using: &random)
        let cookie = theirCookies[address]
        let bytes = try DHTCodec.encode(
            DHTPacket(requestID: id, cookie: cookie ?? [], message: message), signedBy: cookie == nil ? nil : key)
        let timeout = Duration.milliseconds(Int(configuration.lookup.timeout))
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.expire(id)
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard !Task.isCancelled else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                pending[id] = Pending(address: address, expected: expecting, continuation: continuation)
                transmit(bytes, to: address)
            }
        } onCancel: {
            Task { await self.expire(id) }
        }
    }

    func expire(_ id: UInt64) {
        pending.removeValue(forKey: id)?.continuation.resume(throwing: RequestError.timedOut)
    }

    /// Sends a datagram, only to a unicast address of the socket's family (an IPv4 address
    /// mapped into IPv6 on an IPv6 socket): any other send error would close the socket.
    nonisolated func transmit(_ bytes: [UInt8], to address: DHTAddress) {
        guard address.isUnicast else { return }
        let socket: SocketAddress?
        if localAddress.isIPv4 {
            guard address.isIPv4 else { return }
            socket = address.socketAddress
        } else if address.isIPv4 {
            socket = try? SocketAddress(
                ipAddress: "::ffff:" + address.ip.map(String.init).joined(separator: "."), port: Int(address.port))
        } else {
            socket = address.socketAddress
        }
        guard let socket else { return }
        let buffer = channel.allocator.buffer(bytes: bytes)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: socket, data: buffer), promise: nil)
    }

    // MARK: - Lookups

    /// Joins through nodes at `addresses` (IDs unknown): each that answers a ping enters the
    /// table; then a lookup of this node's own ID fills it.
    public func bootstrap(from addresses: [DHTAddress]) async {
        await withTaskGroup(of: DHTPeer?.self) { group in
            for address in addresses where address != localAddress {
                group.addTask { try? await self.request(.ping, to: address).1 }
            }
            for await peer in group { if let peer { heard(peer) } }
        }
        guard !Task.isCancelled else { return }
        _ = await findNode(nodeID)
    }

    /// Refreshes up to `limit` buckets idle for the refresh interval, each by a lookup of a random
    /// ID in its range (the scheduler calls it).
    public func refresh(limit: Int = 3) async {
        for index in table.bucketsDueForRefresh(now: now()).prefix(limit) {
            table.refreshed(index, now: now())
            _ = await findNode(nodeID.random(sharingPrefix: index, using: &random))
        }
    }

    /// What a lookup was, for ``observeLookups(_:)``.
    public enum LookupKind: String, Sendable {
        case node
        case value
    }

    /// Told of each lookup when it ends: its kind, whether a value lookup found a record (node
    /// lookups: whether any node answered), how long it took and how many requests it sent.
    public typealias LookupObserver = @Sendable (LookupKind, Bool, Duration, Int) -> Void
    private var lookupObserver: LookupObserver?

    /// Sets the observer of lookups (the node's metrics).
    public func observeLookups(_ observer: @escaping LookupObserver) { lookupObserver = observer }

    /// The nodes closest to `target`, found by an iterative lookup.
    public func findNode(_ target: DHTNodeID) async -> LookupResult {
        let start = ContinuousClock.now
        let lookup = await run(
            DisjointLookup(
                target: target, seeds: table.closest(to: target, count: configuration.lookup.k), paths: 1,
                excluding: [nodeID], configuration: configuration.lookup),
            asking: .findNode(target: target)
        ) { _, _ in false }
        let path = lookup.paths[0]
        lookupObserver?(.node, !path.closestAnswered.isEmpty, .now - start, path.requests)
        return LookupResult(closest: path.closestAnswered, hops: path.hops, requests: path.requests)
    }

    /// The valid record at `key` with the highest sequence number found over `paths` disjoint
    /// paths (each path stops at the first valid record it gets).
    public func findValue(
        _ key: DHTNodeID, paths: Int = 3, accepting accept: (DHTRecord) -> Bool = { _ in true }
    ) async -> DHTRecord? {
        await findValueCounting(key, paths: paths, accepting: accept).record
    }

    /// ``findValue(_:paths:)``, with the number of requests it sent and the sequential rounds
    /// it took: those of the first path that brought the record kept, or of the longest path
    /// when none did (0 when this node held it and no path returned it).
    ///
    /// `accept` is the caller's own check of a valid record (a presence record's contents): a
    /// record it refuses is ignored as if it were invalid, so a newer record that only looks
    /// right cannot hide an older one that is.
    public func findValueCounting(
        _ key: DHTNodeID, paths: Int = 3, accepting accept: (DHTRecord) -> Bool = { _ in true }
    ) async -> (record: DHTRecord?, requests: Int, hops: Int) {
        let start = ContinuousClock.now
        let now = Self.unixSeconds()
        var best: DHTRecord? = records.get(key, now: now).flatMap { accept($0) ? $0 : nil }
        var bestPath: Int?
        let lookup = await run(
            DisjointLookup(
                target: key, seeds: table.closest(to: key, count: configuration.lookup.k), paths: paths,
                excluding: [nodeID], configuration: DisjointLookup.perPath(configuration.lookup, paths: paths)),
            asking: .findValue(key: key)
        ) { path, message in
            guard case .value(let record?, _) = message, record.key == key, record.expires > now else { return false }
            // The very bytes of the record already kept (held here, or from another path) were
            // checked then; anything else is checked now.
            guard
                record == best || ((try? record.verify()) != nil && Self.plausible(record, now: now) && accept(record))
            else { return false }
            if let kept = best, record.sequence <= kept.sequence {
                // The same record as the one held here: its path still counts for the rounds.
                if record.sequence == kept.sequence, bestPath == nil { bestPath = path }
            } else {
                best = record
                bestPath = path
            }
            return true
        }
        let hops: Int
        if let bestPath {
            hops = lookup.paths[bestPath].hops
        } else {
            hops = best == nil ? lookup.paths.map(\.hops).max() ?? 0 : 0
        }
        lookupObserver?(.value, best != nil, .now - start, lookup.requests)
        return (best, lookup.requests, hops)
    }

    /// Whether a valid record's sequence number (its signing time, Unix ms) is no further ahead
    /// of this node's clock than a store accepts.
    static func plausible(_ record: DHTRecord, now: UInt64) -> Bool {
        record.sequence <= (now + RecordStore.maximumClockAhead) * 1_000
    }

    /// Stores `record` at the `k` closest nodes to its key; returns how many took it.
    @discardableResult
    public func publish(_ record: DHTRecord) async -> Int {
        guard !Task.isCancelled else { return 0 }
        let closest = await findNode(record.key).closest
        guard !Task.isCancelled else { return 0 }
        return await withTaskGroup(of: Bool.self) { group in
            for peer in closest {
                group.addTask {
                    guard
                        case (.stored(.stored), _)? = try? await self.request(
                            .store(record), to: peer.address, expecting: peer.id)
                    else { return false }
                    return true
                }
            }
            var stored = 0
            for await took in group where took { stored += 1 }
            return stored
        }
    }

    enum LookupEvent: Sendable {
        case reply(path: Int, peer: DHTPeer, message: DHTMessage?)
        case tick
    }

    /// Drives `lookup` with real time: sends `asking` to whom it says, feeds it the answers,
    /// wakes at its deadlines. `found(path, message)` says whether a reply ends its path.
    func run(
        _ start: DisjointLookup, asking: DHTMessage, found: (Int, DHTMessage) -> Bool
    ) async
        -> DisjointLookup
    {
        var lookup = start
        return await withTaskGroup(of: LookupEvent.self) { group in
            var ticking = false
            var outstanding = 0
            // A cancelled lookup (the node stopping) ends at once: its requests would fail
            // without ever being answered, and it would otherwise wait out every timeout.
            while !Task.isCancelled {
                let now = now()
                for ask in lookup.next(now: now) {
                    outstanding += 1
                    group.addTask {
                        let reply = try? await self.request(asking, to: ask.peer.address, expecting: ask.peer.id)
                        return .reply(path: ask.path, peer: ask.peer, message: reply?.0)
                    }
                }
                for failed in lookup.takeFailures() { table.failed(failed, now: now) }
                if lookup.isFinished { break }
                if !ticking, let deadline = lookup.nextDeadline(after: now) {
                    ticking = true
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(Int(deadline - min(deadline, now)) + 1))
                        return .tick
                    }
                }
                guard outstanding > 0 || ticking, let event = await group.next() else { break }
                switch event {
                case .tick:
                    ticking = false
                case .reply(let path, let peer, let message):
                    outstanding -= 1
                    guard let message else { continue }
                    heard(peer)
                    switch message {
                    case .value(_, let closer), .nodes(let closer):
                        if found(path, message) {
                            lookup.answered(path: path, by: peer.id, closer: closer)
                            lookup.markFound(path: path)
                        } else {
                            lookup.answered(path: path, by: peer.id, closer: closer)
                        }
                    default:
                        lookup.failed(path: path, peer.id)
                    }
                }
            }
            group.cancelAll()
            return lookup
        }
    }

    static func unixSeconds() -> UInt64 { UInt64(Date().timeIntervalSince1970) }
}
