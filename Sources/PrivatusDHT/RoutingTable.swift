/// A Kademlia routing table (Maymounkov & Mazières 2002): one bucket of at most `k` nodes per
/// common-prefix length with the local identifier, least recently seen first, each with a
/// replacement cache. Pure: the time is passed in (milliseconds on any monotonic clock), and the
/// table never sends anything itself — it says whom to ping.
///
/// Rules (docs/PROTOCOL.md, "DHT"):
/// - a node enters only after answering one of our requests (``heard(from:now:)``): a request
///   from an unknown node is answered but does not add it — its caller pings it first;
/// - a full bucket keeps its nodes: the newcomer waits in the replacement cache and the least
///   recently seen node is pinged (only when it has been quiet for `pingAfter`; ping before evict),
///   and leaves only when that ping fails;
/// - a bucket holds at most `perSubnet` nodes of one IPv4 /24 or IPv6 /48 (loopback exempt when
///   the configuration says so, for local networks and tests);
/// - a node whose requests fail is dropped after `maximumFailures` (at once when a replacement
///   waits);
/// - a bucket without activity for `refreshInterval` is due for a refresh lookup.
public struct RoutingTable: Sendable {
    public struct Configuration: Sendable {
        /// Bucket size and replication parameter.
        public var k = 20
        public var perSubnet = 2
        public var exemptLoopback = false
        /// How long the least recently seen node of a full bucket may have been quiet before a
        /// newcomer makes the table ping it (ms).
        public var pingAfter: UInt64 = 60_000
        public var maximumFailures = 3
        public var refreshInterval: UInt64 = 15 * 60_000

        public init() {}
    }

    /// A node in a bucket.
    public struct Entry: Sendable, Hashable {
        public var peer: DHTPeer
        /// When it last answered us (ms).
        public var lastSeen: UInt64
        /// Requests to it that failed since it last answered.
        public var failures: Int
    }

    /// What hearing from a node did.
    public enum Insertion: Sendable, Hashable {
        /// It is in its bucket now (new).
        case added
        /// It was there: moved to the most recently seen end (and its address updated).
        case refreshed
        /// Its bucket is full: it waits in the replacement cache; ping `ping` (the least recently
        /// seen node) and report the outcome, when given.
        case waiting(ping: DHTPeer?)
        /// Not taken: the local identifier, or too many nodes of its network in the bucket.
        case refused
    }

    struct Bucket: Sendable {
        var entries: [Entry] = []
        var replacements: [Entry] = []
        var lastActivity: UInt64 = 0
        /// The node pinged to decide whether a newcomer gets its place.
        var pinging: DHTNodeID?
    }

    public let local: DHTNodeID
    public let configuration: Configuration
    var buckets: [Bucket]

    public init(local: DHTNodeID, configuration: Configuration = Configuration(), now: UInt64 = 0) {
        self.local = local
        self.configuration = configuration
        var bucket = Bucket()
        bucket.lastActivity = now
        buckets = Array(repeating: bucket, count: DHTNodeID.bitCount)
    }

    /// How many nodes the table holds (replacement caches not counted).
    public var count: Int { buckets.reduce(0) { $0 + $1.entries.count } }

    /// Every node in the table, bucket by bucket.
    public var peers: [DHTPeer] { buckets.flatMap { $0.entries.map(\.peer) } }

    /// The `count` nodes heard from most recently, most recent first.
    public func mostRecentlySeen(_ count: Int) -> [DHTPeer] {
        buckets.flatMap(\.entries).sorted { $0.lastSeen > $1.lastSeen }.prefix(count).map(\.peer)
    }

    public func contains(_ id: DHTNodeID) -> Bool {
        guard let index = bucketIndex(of: id) else { return false }
        return buckets[index].entries.contains { $0.peer.id == id }
    }

    /// The entry for `id`, if it is in the table.
    public func entry(_ id: DHTNodeID) -> Entry? {
        guard let index = bucketIndex(of: id) else { return nil }
        return buckets[index].entries.first { $0.peer.id == id }
    }

    /// The bucket `id` belongs in; nil for the local identifier.
    func bucketIndex(of id: DHTNodeID) -> Int? {
        let prefix = local.commonPrefixLength(with: id)
        return prefix < DHTNodeID.bitCount ? prefix : nil
    }

    /// `peer` answered one of our requests at `now`.
    @discardableResult
    public mutating func heard(from peer: DHTPeer, now: UInt64) -> Insertion {
        guard let index = bucketIndex(of: peer.id) else { return .refused }
        var bucket = buckets[index]
        defer { buckets[index] = bucket }
        bucket.lastActivity = now
        if let position = bucket.entries.firstIndex(where: { $0.peer.id == peer.id }) {
            var entry = bucket.entries.remove(at: position)
            // A new address only if its network still has room beside the others.
            if entry.peer.address != peer.address, admits(peer, in: bucket.entries) { entry.peer = peer }
            entry.lastSeen = now
            entry.failures = 0
            bucket.entries.append(entry)
            if bucket.pinging == peer.id { bucket.pinging = nil }
            return .refreshed
        }
        guard admits(peer, in: bucket.entries) else { return .refused }
        let entry = Entry(peer: peer, lastSeen: now, failures: 0)
        if bucket.entries.count < configuration.k {
            bucket.entries.append(entry)
            bucket.replacements.removeAll { $0.peer.id == peer.id }
            return .added
        }
        // Full: the newcomer waits (most recent last, at most k), the oldest node may be asked.
        bucket.replacements.removeAll { $0.peer.id == peer.id }
        if admits(peer, in: bucket.replacements) {
            if bucket.replacements.count >= configuration.k { bucket.replacements.removeFirst() }
            bucket.replacements.append(entry)
        }
        guard bucket.pinging == nil, let oldest = bucket.entries.first,
            now >= oldest.lastSeen + configuration.pingAfter || oldest.failures > 0
        else { return .waiting(ping: nil) }
        bucket.pinging = oldest.peer.id
        return .waiting(ping: oldest.peer)
    }

    /// A request to `id` went unanswered (timed out, or the ping of a full bucket's oldest node
    /// failed). Returns the node that took its place, if any.
    @discardableResult
    public mutating func failed(_ id: DHTNodeID, now: UInt64) -> DHTPeer? {
        guard let index = bucketIndex(of: id) else { return nil }
        var bucket = buckets[index]
        defer { buckets[index] = bucket }
        if bucket.pinging == id { bucket.pinging = nil }
        bucket.replacements.removeAll { $0.peer.id == id }
        guard let position = bucket.entries.firstIndex(where: { $0.peer.id == id }) else { return nil }
        bucket.entries[position].failures += 1
        let hasReplacement = !bucket.replacements.isEmpty
        guard hasReplacement || bucket.entries[position].failures >= configuration.maximumFailures else { return nil }
        bucket.entries.remove(at: position)
        // The most recently seen replacement that its network's cap still admits.
        while let candidate = bucket.replacements.popLast() {
            if admits(candidate.peer, in: bucket.entries) {
                bucket.entries.append(candidate)
                return candidate.peer
            }
        }
        return nil
    }

    /// Whether `entries` leave room for another node of `peer`'s network.
    func admits(_ peer: DHTPeer, in entries: [Entry]) -> Bool {
        if configuration.exemptLoopback && peer.address.isLoopback { return true }
        let subnet = peer.address.subnet
        var same = 0
        for entry in entries where entry.peer.address.subnet == subnet {
            same += 1
            if same >= configuration.perSubnet { return false }
        }
        return true
    }

    /// The `count` nodes closest to `target` by XOR distance, closest first.
    ///
    /// Reads buckets in distance bands instead of sorting the table: with `c` the common prefix
    /// of `target` and the local identifier, bucket `c` holds the closest nodes, buckets above
    /// `c` the next band, then buckets `c − 1`, `c − 2`, … each farther than the last.
    public func closest(to target: DHTNodeID, count: Int) -> [DHTPeer] {
        guard count > 0 else { return [] }
        let split = min(local.commonPrefixLength(with: target), DHTNodeID.bitCount - 1)
        var result: [DHTPeer] = []
        result.reserveCapacity(count)
        func take(_ band: [DHTPeer]) {
            let sorted = band.sorted { target.isCloser($0.id, than: $1.id) }
            result.append(contentsOf: sorted.prefix(count - result.count))
        }
        take(buckets[split].entries.map(\.peer))
        if result.count < count {
            var above: [DHTPeer] = []
            for index in (split + 1)..<DHTNodeID.bitCount {
                above.append(contentsOf: buckets[index].entries.map(\.peer))
            }
            take(above)
        }
        var index = split - 1
        while result.count < count && index >= 0 {
            take(buckets[index].entries.map(\.peer))
            index -= 1
        }
        return result
    }

    /// Buckets that have seen no activity for the refresh interval and hold or could hold nodes
    /// (the first empty bucket past the last full one included), lowest index first.
    public func bucketsDueForRefresh(now: UInt64) -> [Int] {
        let highest = buckets.lastIndex { !$0.entries.isEmpty } ?? 0
        return (0...min(highest + 1, DHTNodeID.bitCount - 1)).filter {
            now >= buckets[$0].lastActivity + configuration.refreshInterval
        }
    }

    /// A lookup for a target in bucket `index` ran: the bucket counts as active.
    public mutating func refreshed(_ index: Int, now: UInt64) {
        buckets[index].lastActivity = now
    }

    /// The nodes waiting for a place in `id`'s bucket (tests, status).
    public func replacements(near id: DHTNodeID) -> [DHTPeer] {
        guard let index = bucketIndex(of: id) else { return [] }
        return buckets[index].replacements.map(\.peer)
    }
}
