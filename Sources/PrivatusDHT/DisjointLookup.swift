/// A lookup over `d` disjoint paths (S/Kademlia, Baumgart & Mies 2007): the seeds are dealt
/// out among the paths, closest first, and a node asked by one path is never asked by another,
/// so one eclipsed path (an attacker's nodes answering only with each other) cannot hide a
/// value the others reach. Bundle, presence and mailbox lookups use at least 3 paths; the caller
/// keeps the valid value with the highest sequence number over all of them.
public struct DisjointLookup: Sendable {
    public private(set) var paths: [Lookup]
    /// Which path asked each node.
    var claims: [DHTNodeID: Int] = [:]

    public init(
        target: DHTNodeID, seeds: [DHTPeer], paths count: Int, excluding excluded: Set<DHTNodeID> = [],
        configuration: Lookup.Configuration = Lookup.Configuration()
    ) {
        precondition(count >= 1)
        let sorted = seeds.sorted { target.isCloser($0.id, than: $1.id) }
        paths = (0..<count).map { path in
            let share = stride(from: path, to: sorted.count, by: count).map { sorted[$0] }
            return Lookup(target: target, seeds: share, excluding: excluded, configuration: configuration)
        }
    }

    /// The configuration of each of `paths` disjoint paths: the α requests in flight are shared
    /// among the paths (at least one each), so a lookup over disjoint paths sends no more at once
    /// than a lookup over one.
    public static func perPath(_ configuration: Lookup.Configuration, paths: Int) -> Lookup.Configuration {
        var shared = configuration
        shared.alpha = max(1, configuration.alpha / max(1, paths))
        return shared
    }

    public var isFinished: Bool { paths.allSatisfy(\.isFinished) }

    /// Requests sent over all paths.
    public var requests: Int { paths.reduce(0) { $0 + $1.requests } }

    /// Whom each path asks now; each node asked is claimed by its path.
    public mutating func next(now: UInt64) -> [(path: Int, peer: DHTPeer)] {
        var asks: [(path: Int, peer: DHTPeer)] = []
        for path in paths.indices {
            for peer in paths[path].next(now: now) {
                claims[peer.id] = path
                for other in paths.indices where other != path { paths[other].exclude(peer.id) }
                asks.append((path, peer))
            }
        }
        return asks
    }

    /// `id` answered path `path` with `closer`; nodes another path claimed are left out.
    public mutating func answered(path: Int, by id: DHTNodeID, closer: [DHTPeer]) {
        let own = closer.filter { claims[$0.id].map { $0 == path } ?? true }
        paths[path].answered(by: id, closer: own)
    }

    public mutating func failed(path: Int, _ id: DHTNodeID) { paths[path].failed(id) }

    /// Path `path` found a valid value: it stops; the others go on.
    public mutating func markFound(path: Int) { paths[path].markFound() }

    /// The earliest deadline over the paths.
    public func nextDeadline(after now: UInt64) -> UInt64? { paths.compactMap { $0.nextDeadline(after: now) }.min() }

    /// Timed-out nodes over all paths since the last call.
    public mutating func takeFailures() -> [DHTNodeID] {
        paths.indices.flatMap { paths[$0].takeFailures() }
    }
}
