/// An iterative Kademlia lookup as a pure state machine told the time (milliseconds on any
/// monotonic clock): it says whom to ask next, and is told the answers, failures and the time.
/// The node's UDP service and the simulator drive the same machine.
///
/// - At most `alpha` requests are outstanding, counting only those younger than `slowAfter`: a
///   slow node is not waited for, the next candidate is asked beside it (its answer still counts
///   when it comes); a request older than `timeout` is sent again (`retries` times), then the
///   node has failed.
/// - It ends when the `k` closest nodes it knows of (failed ones left out) have all answered, or
///   when no candidate is left to ask, or (``markFound()``) when a valid value was found.
/// - A node first learned from the seeds is at depth 1, one learned from a depth-d answer at
///   d + 1: the depth of the closest node that answered is the number of sequential rounds the
///   lookup needed (`hops`).
public struct Lookup: Sendable {
    public struct Configuration: Sendable {
        public var k = 20
        public var alpha = 3
        /// When an outstanding request stops counting against `alpha` (ms).
        public var slowAfter: UInt64 = 400
        /// When an outstanding request has failed (ms).
        public var timeout: UInt64 = 2_000
        /// The most candidates kept (closest first).
        public var maximumCandidates = 200
        /// How many times a request that timed out is sent again before the node counts as
        /// failed (a datagram or its answer can be lost).
        public var retries = 2

        public init() {}
    }

    enum State: Sendable, Hashable {
        case waiting
        case asked(at: UInt64)
        case answered
        case failed
    }

    struct Candidate: Sendable {
        var peer: DHTPeer
        var state: State
        var depth: Int
        var attempts = 0
    }

    public let target: DHTNodeID
    public let configuration: Configuration
    /// Candidates, closest to the target first.
    var candidates: [Candidate] = []
    /// Identifiers never to ask (the local node; nodes claimed by another disjoint path).
    var excluded: Set<DHTNodeID>
    public private(set) var isFinished = false
    public private(set) var foundValue = false
    /// Requests sent so far.
    public private(set) var requests = 0
    /// Nodes whose requests timed out since ``takeFailures()`` was last called.
    var newlyFailed: [DHTNodeID] = []

    public init(
        target: DHTNodeID, seeds: [DHTPeer], excluding excluded: Set<DHTNodeID> = [],
        configuration: Configuration = Configuration()
    ) {
        self.target = target
        self.configuration = configuration
        self.excluded = excluded
        learn(seeds, depth: 1)
        if candidates.isEmpty { isFinished = true }
    }

    /// Adds nodes not known yet, in distance order, keeping the closest `maximumCandidates`.
    mutating func learn(_ peers: [DHTPeer], depth: Int) {
        for peer in peers where !excluded.contains(peer.id) {
            if let known = candidates.firstIndex(where: { $0.peer.id == peer.id }) {
                candidates[known].depth = min(candidates[known].depth, depth)
                continue
            }
            let position = insertionIndex(for: peer.id)
            guard position < configuration.maximumCandidates else { continue }
            candidates.insert(Candidate(peer: peer, state: .waiting, depth: depth), at: position)
            if candidates.count > configuration.maximumCandidates {
                // Drop the farthest one that is not outstanding.
                if let drop = candidates.lastIndex(where: {
                    if case .asked = $0.state { return false }
                    return true
                }) {
                    candidates.remove(at: drop)
                }
            }
        }
    }

    func insertionIndex(for id: DHTNodeID) -> Int {
        var low = 0
        var high = candidates.count
        let distance = target.distance(to: id)
        while low < high {
            let middle = (low + high) / 2
            if target.distance(to: candidates[middle].peer.id) < distance { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Fails requests past their timeout, then marks and returns whom to ask now. Call it after
    /// every answer or failure and at ``nextDeadline``.
    public mutating func next(now: UInt64) -> [DHTPeer] {
        guard !isFinished else { return [] }
        var active = 0
        for index in candidates.indices {
            guard case .asked(let at) = candidates[index].state else { continue }
            if now >= at + configuration.timeout {
                if candidates[index].attempts <= configuration.retries {
                    candidates[index].state = .waiting  // asked again below
                } else {
                    candidates[index].state = .failed
                    newlyFailed.append(candidates[index].peer.id)
                }
            } else if now < at + configuration.slowAfter {
                active += 1
            }
        }
        if checkFinished() { return [] }
        var ask: [DHTPeer] = []
        // Only among the k closest live candidates: farther ones cannot change the result
        // until a closer one fails.
        var live = 0
        for index in candidates.indices where active < configuration.alpha && live < configuration.k {
            switch candidates[index].state {
            case .failed:
                continue
            case .waiting:
                candidates[index].state = .asked(at: now)
                candidates[index].attempts += 1
                ask.append(candidates[index].peer)
                active += 1
                requests += 1
            case .asked, .answered:
                break
            }
            live += 1
        }
        return ask
    }

    /// `id` answered with `closer` (the nodes it knows closest to the target; at most `k` are
    /// taken). An answer from a node that was not asked, or was given up, is ignored.
    public mutating func answered(by id: DHTNodeID, closer: [DHTPeer]) {
        guard let index = candidates.firstIndex(where: { $0.peer.id == id }),
            case .asked = candidates[index].state
        else { return }
        candidates[index].state = .answered
        let depth = candidates[index].depth
        learn(Array(closer.prefix(configuration.k)), depth: depth + 1)
        _ = checkFinished()
    }

    /// A request to `id` failed before its timeout (an error answer, an unreachable node).
    public mutating func failed(_ id: DHTNodeID) {
        guard let index = candidates.firstIndex(where: { $0.peer.id == id }) else { return }
        candidates[index].state = .failed
        _ = checkFinished()
    }

    /// The nodes whose requests timed out since the last call (to tell the routing table).
    public mutating func takeFailures() -> [DHTNodeID] {
        defer { newlyFailed.removeAll() }
        return newlyFailed
    }

    /// Never asks `id` (another disjoint path claimed it); a request already sent to it stands.
    public mutating func exclude(_ id: DHTNodeID) {
        excluded.insert(id)
        if let index = candidates.firstIndex(where: { $0.peer.id == id }), candidates[index].state == .waiting {
            candidates.remove(at: index)
        }
    }

    /// A valid value was found: the lookup ends.
    public mutating func markFound() {
        foundValue = true
        isFinished = true
    }

    /// Ends when the k closest live candidates have answered, or nothing is left to ask or wait for.
    mutating func checkFinished() -> Bool {
        guard !isFinished else { return true }
        var live = 0
        var pending = false
        for candidate in candidates {
            switch candidate.state {
            case .failed: continue
            case .answered: break
            case .waiting, .asked: pending = true
            }
            live += 1
            if live == configuration.k || pending { break }
        }
        if !pending { isFinished = true }
        return isFinished
    }

    /// When ``next(now:)`` must be called again if nothing arrives before: the earliest moment
    /// after `now` at which an outstanding request becomes slow or fails. Nil when nothing is
    /// outstanding.
    public func nextDeadline(after now: UInt64) -> UInt64? {
        var earliest: UInt64?
        for candidate in candidates {
            guard case .asked(let at) = candidate.state else { continue }
            for moment in [at + configuration.slowAfter, at + configuration.timeout] where moment > now {
                earliest = min(earliest ?? moment, moment)
            }
        }
        return earliest
    }

    /// The `k` closest nodes that answered, closest first.
    public var closestAnswered: [DHTPeer] {
        Array(
            candidates.lazy.filter { $0.state == .answered }.prefix(configuration.k).map(\.peer))
    }

    /// The number of sequential rounds to the closest node that answered (0 if none did).
    public var hops: Int {
        candidates.first { $0.state == .answered }?.depth ?? 0
    }

    /// Whether `id` answered (a node lookup found its target when the target answered).
    public func didAnswer(_ id: DHTNodeID) -> Bool {
        candidates.contains { $0.peer.id == id && $0.state == .answered }
    }

    /// Requests outstanding now.
    public var outstanding: [DHTPeer] {
        candidates.compactMap {
            if case .asked = $0.state { return $0.peer }
            return nil
        }
    }
}
