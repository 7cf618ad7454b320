import PrivatusCore

/// An in-memory network of DHT nodes running the real ``RoutingTable`` and ``Lookup`` state
/// machines under a simulated clock, with per-message latency, loss and churn. Links are
/// authenticated by construction (a reply comes from the node asked), so no signature is made or
/// checked and 10,000 nodes fit in one process. Deterministic for a seed: every decision draws
/// from one seeded generator and iterates arrays, never a `Set` or `Dictionary`.
///
/// A request from a node not in the receiver's table makes the receiver ping it (one simulated
/// round trip) and add it only if it answers, as a real node does; a full bucket's ping of its
/// least recently seen node is simulated the same way.
public final class DHTSimulator {
    public struct Configuration: Sendable {
        public var seed: UInt64 = 1
        /// One-way latency of a message, drawn uniformly (ms).
        public var latency: ClosedRange<UInt64> = 10...80
        /// The chance that a message (request or reply) is lost.
        public var loss = 0.0
        public var table = RoutingTable.Configuration()
        public var lookup = Lookup.Configuration()

        public init() {}
    }

    /// What one lookup did.
    public struct Outcome: Sendable, Hashable {
        /// For a node lookup: whether the target itself answered.
        public var found: Bool
        /// Sequential rounds to the closest node that answered.
        public var hops: Int
        public var requests: Int
        /// Simulated time it took (ms).
        public var duration: UInt64
    }

    struct Node {
        var peer: DHTPeer
        var table: RoutingTable
        var online = true
    }

    public let configuration: Configuration
    var nodes: [Node] = []
    var index: [DHTNodeID: Int] = [:]
    var random: SplitMix64
    /// The simulated clock (ms).
    public private(set) var now: UInt64 = 0
    /// Messages sent (requests, replies and pings), for the figures.
    public private(set) var messages = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        random = SplitMix64(seed: configuration.seed)
    }

    public var nodeCount: Int { nodes.count }
    public var onlineCount: Int { nodes.reduce(0) { $0 + ($1.online ? 1 : 0) } }
    public func id(of node: Int) -> DHTNodeID { nodes[node].peer.id }
    public func isOnline(_ node: Int) -> Bool { nodes[node].online }
    public func table(of node: Int) -> RoutingTable { nodes[node].table }

    /// Adds a node with a fresh identifier and address; it joins through `bootstrap` (a node
    /// index) by looking itself up, or starts the network alone. Returns its index.
    @discardableResult
    public func addNode(bootstrap: Int? = nil) -> Int {
        let id = DHTNodeID.random(using: &random)
        // Addresses spread over many /24s, as on the Internet (the subnet cap is not what is tested here).
        let address = DHTAddress(
            ipv4: UInt8(1 + random.next() % 223), UInt8(truncatingIfNeeded: random.next()),
            UInt8(truncatingIfNeeded: random.next()), UInt8(1 + random.next() % 254), port: 4_000)
        let peer = DHTPeer(id: id, address: address)
        let node = nodes.count
        nodes.append(Node(peer: peer, table: RoutingTable(local: id, configuration: configuration.table, now: now)))
        index[id] = node
        if let bootstrap, nodes[bootstrap].online {
            // The bootstrap node answered its first ping.
            nodes[node].table.heard(from: nodes[bootstrap].peer, now: now)
            _ = lookup(from: node, target: id)
        }
        return node
    }

    /// Builds a network of `count` nodes, each joining through a random node already in it.
    public func grow(to count: Int) {
        if nodes.isEmpty { addNode() }
        while nodes.count < count { addNode(bootstrap: randomOnlineNode()) }
    }

    /// Takes `count` random online nodes off the network without notice; returns them.
    @discardableResult
    public func churn(_ count: Int) -> [Int] {
        var gone: [Int] = []
        var online = nodes.indices.filter { nodes[$0].online }
        for _ in 0..<min(count, online.count) {
            let pick = Int(random.next() % UInt64(online.count))
            nodes[online[pick]].online = false
            gone.append(online.remove(at: pick))
        }
        return gone
    }

    /// The identifier of a random online node other than `node` (the network must have two).
    public func randomTarget(for node: Int) -> DHTNodeID {
        var target = randomOnlineNode()
        while target == node { target = randomOnlineNode() }
        return nodes[target].peer.id
    }

    /// A random online node (the network must have one).
    public func randomOnlineNode() -> Int {
        for _ in 0..<64 {
            let pick = Int(random.next() % UInt64(nodes.count))
            if nodes[pick].online { return pick }
        }
        let online = nodes.indices.filter { nodes[$0].online }
        return online[Int(random.next() % UInt64(online.count))]
    }

    /// Runs a lookup for `target` from `origin` to its end (over `paths` disjoint paths); the
    /// simulated clock advances by its duration. A node lookup has found its target when the
    /// node with that identifier answered.
    public func lookup(from origin: Int, target: DHTNodeID, paths: Int = 1) -> Outcome {
        let started = now
        let seeds = nodes[origin].table.closest(to: target, count: configuration.lookup.k)
        var lookup = DisjointLookup(
            target: target, seeds: seeds, paths: paths, excluding: [nodes[origin].peer.id],
            configuration: DisjointLookup.perPath(configuration.lookup, paths: paths))
        // Replies in flight: (arrival, order, path, responder, closer nodes).
        var replies: [(at: UInt64, order: Int, path: Int, from: DHTPeer, closer: [DHTPeer])] = []
        var order = 0
        var clock = now
        while true {
            for ask in lookup.next(now: clock) {
                if let reply = request(ask.peer, from: origin, target: target, at: clock) {
                    order += 1
                    let arrival = clock + reply.delay
                    let position = replies.firstIndex { ($0.at, $0.order) > (arrival, order) } ?? replies.endIndex
                    replies.insert((arrival, order, ask.path, ask.peer, reply.closer), at: position)
                }
            }
            for failed in lookup.takeFailures() { nodes[origin].table.failed(failed, now: clock) }
            if lookup.isFinished { break }
            let deadline = lookup.nextDeadline(after: clock)
            if let first = replies.first, deadline.map({ first.at <= $0 }) ?? true {
                replies.removeFirst()
                clock = max(clock, first.at)
                note(nodes[origin].table.heard(from: first.from, now: clock), at: origin, now: clock)
                lookup.answered(path: first.path, by: first.from.id, closer: first.closer)
            } else if let deadline {
                clock = max(clock, deadline)
            } else {
                break
            }
        }
        now = clock
        let found = lookup.paths.contains { $0.didAnswer(target) }
        let hops = lookup.paths.map(\.hops).filter { $0 > 0 }.min() ?? 0
        return Outcome(found: found, hops: hops, requests: lookup.requests, duration: clock - started)
    }

    /// Sends a FIND_NODE for `target` from `origin` to `peer`: nil when the request or its reply
    /// is lost or the node is offline; otherwise the round trip and the nodes it answers with.
    func request(
        _ peer: DHTPeer, from origin: Int, target: DHTNodeID, at now: UInt64
    ) -> (
        delay: UInt64, closer: [DHTPeer]
    )? {
        messages += 1
        guard let receiver = index[peer.id], nodes[receiver].online, !lost() else { return nil }
        // The receiver answers, and takes the requester in if it answers a ping.
        let requester = nodes[origin].peer
        if !nodes[receiver].table.contains(requester.id), ping(origin) {
            note(nodes[receiver].table.heard(from: requester, now: now), at: receiver, now: now)
        }
        let closer = nodes[receiver].table.closest(to: target, count: configuration.lookup.k)
        messages += 1
        guard !lost() else { return nil }
        return (oneWay() + oneWay(), closer)
    }

    /// A full bucket asked to ping its least recently seen node: the outcome decides who stays.
    func note(_ insertion: RoutingTable.Insertion, at node: Int, now: UInt64) {
        guard case .waiting(let ping?) = insertion else { return }
        if let target = index[ping.id], self.ping(target) {
            nodes[node].table.heard(from: ping, now: now)
        } else {
            nodes[node].table.failed(ping.id, now: now)
        }
    }

    /// A ping and its pong: whether both got through.
    func ping(_ node: Int) -> Bool {
        messages += 2
        return nodes[node].online && !lost() && !lost()
    }

    func lost() -> Bool {
        configuration.loss > 0 && Double(random.next() >> 11) / Double(1 << 53) < configuration.loss
    }

    func oneWay() -> UInt64 {
        let span = configuration.latency.upperBound - configuration.latency.lowerBound + 1
        return configuration.latency.lowerBound + random.next() % span
    }
}
