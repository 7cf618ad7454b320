import PrivatusCore
import PrivatusDHT
import Testing

/// The lookup state machine against small networks whose answers the test controls.
@Suite struct LookupTests {
    var random = SplitMix64(seed: 11)

    mutating func peers(_ count: Int) -> [DHTPeer] {
        (0..<count).map { index in
            DHTPeer(
                id: DHTNodeID.random(using: &random),
                address: DHTAddress(ipv4: 10, UInt8(index >> 8), UInt8(index & 0xff), 1, port: 4_000))
        }
    }

    /// Drives `lookup` where every node answers at once with the `k` closest nodes of `network`
    /// it knows, unless `answer` says otherwise (nil: no answer).
    func run(
        _ lookup: inout Lookup, answer: (DHTPeer) -> [DHTPeer]?, start: UInt64 = 0
    ) -> UInt64 {
        var now = start
        for _ in 0..<10_000 where !lookup.isFinished {
            let asks = lookup.next(now: now)
            var answeredAny = false
            for peer in asks {
                if let closer = answer(peer) {
                    lookup.answered(by: peer.id, closer: closer)
                    answeredAny = true
                }
            }
            if !answeredAny, asks.isEmpty, let deadline = lookup.nextDeadline(after: now) { now = deadline }
        }
        return now
    }

    @Test mutating func itConvergesOnTheKClosestNodesAndCountsRounds() {
        let network = peers(500)
        let target = network[123].id
        let byDistance = network.sorted { target.isCloser($0.id, than: $1.id) }
        // Each node knows the 20 nodes closest to the target among those a bit farther than
        // itself: the lookup has to walk.
        func answer(_ peer: DHTPeer) -> [DHTPeer]? {
            let rank = byDistance.firstIndex(of: peer) ?? 0
            let from = max(0, rank / 4 - 10)
            return Array(byDistance[from..<min(byDistance.count, from + 20)])
        }
        var lookup = Lookup(target: target, seeds: Array(byDistance.suffix(20)))
        _ = run(&lookup, answer: answer)
        #expect(lookup.isFinished)
        #expect(lookup.didAnswer(target))
        #expect(lookup.closestAnswered == Array(byDistance.prefix(20)), "the k closest, closest first")
        #expect(lookup.hops > 1 && lookup.hops < 10)
        #expect(lookup.requests < 200)
    }

    @Test mutating func aSlowNodeIsNotWaitedForAndASilentOneFails() {
        let network = peers(30)
        let target = DHTNodeID.random(using: &random)
        let sorted = network.sorted { target.isCloser($0.id, than: $1.id) }
        var configuration = Lookup.Configuration()
        configuration.k = 5
        configuration.retries = 0
        var lookup = Lookup(target: target, seeds: sorted, configuration: configuration)
        let first = lookup.next(now: 0)
        #expect(first == Array(sorted.prefix(3)), "alpha = 3, closest first")
        #expect(lookup.next(now: 100).isEmpty, "three outstanding and not slow yet")
        #expect(lookup.nextDeadline(after: 100) == 400)
        // Past slowAfter the three no longer hold the lookup back; it asks on, but only among the
        // five closest live nodes (the slow three may still answer).
        let second = lookup.next(now: 400)
        #expect(second == Array(sorted[3..<5]))
        for peer in second { lookup.answered(by: peer.id, closer: []) }
        #expect(!lookup.isFinished, "the closest are still outstanding")
        #expect(lookup.next(now: 401).isEmpty)
        // The first three never answer and fail at the timeout: the next three are asked.
        let third = lookup.next(now: 2_000)
        #expect(Set(lookup.takeFailures()) == Set(first.map(\.id)))
        #expect(lookup.takeFailures().isEmpty)
        #expect(third == Array(sorted[5..<8]) && lookup.outstanding == third)
        for peer in third { lookup.answered(by: peer.id, closer: []) }
        #expect(lookup.isFinished)
        #expect(lookup.closestAnswered == Array(sorted[3..<8]))
    }

    @Test mutating func aRequestThatTimesOutIsSentAgainBeforeTheNodeCountsAsFailed() {
        let network = peers(1)
        var configuration = Lookup.Configuration()
        configuration.retries = 2
        var lookup = Lookup(target: DHTNodeID.random(using: &random), seeds: network, configuration: configuration)
        #expect(lookup.next(now: 0) == network)
        #expect(lookup.next(now: 2_000) == network, "first retry")
        #expect(lookup.next(now: 4_000) == network, "second retry")
        #expect(lookup.next(now: 6_000).isEmpty && lookup.isFinished)
        #expect(lookup.takeFailures() == network.map(\.id) && lookup.requests == 3)
    }

    @Test mutating func answersFromNodesNotAskedAreIgnoredAndLongAnswersCut() {
        let network = peers(60)
        let target = DHTNodeID.random(using: &random)
        var configuration = Lookup.Configuration()
        configuration.k = 4
        var lookup = Lookup(target: target, seeds: Array(network.prefix(4)), configuration: configuration)
        let asked = lookup.next(now: 0)
        // A node never asked claims to answer with nodes very close to the target: ignored.
        lookup.answered(by: network[50].id, closer: [network[55]])
        #expect(!lookup.didAnswer(network[50].id))
        // An asked node names 50 nodes: only k are taken.
        lookup.answered(by: asked[0].id, closer: Array(network[10..<60]))
        lookup.answered(by: asked[0].id, closer: [network[5]])  // a second answer: ignored
        var learned = Set<DHTNodeID>()
        while !lookup.isFinished {
            let next = lookup.next(now: 0)
            if next.isEmpty { break }
            for peer in next {
                learned.insert(peer.id)
                lookup.answered(by: peer.id, closer: [])
            }
        }
        #expect(!learned.contains(network[5].id) && !learned.contains(network[55].id))
        #expect(learned.isSubset(of: Set((network[0..<4] + network[10..<14]).map(\.id))))
    }

    @Test mutating func aLookupWithNothingToAskEnds() {
        let lookup = Lookup(target: DHTNodeID.random(using: &random), seeds: [])
        #expect(lookup.isFinished && lookup.hops == 0)
        var alone = Lookup(target: DHTNodeID.random(using: &random), seeds: peers(2))
        let asks = alone.next(now: 0)
        for peer in asks { alone.failed(peer.id) }
        #expect(alone.isFinished && alone.closestAnswered.isEmpty)
    }

    /// An attacker's nodes sit closest to the target and answer only with each other. One path
    /// seeded with three of them is eclipsed; three disjoint paths are not: the honest nodes that
    /// one path is never allowed to ask are asked by the others.
    @Test mutating func disjointPathsGetThroughAnEclipseThatCapturesOnePath() {
        let honest = peers(300)
        let target = honest[42].id
        var attackers: [DHTPeer] = []
        for index in 0..<40 {
            // Closer to the target than any honest node but the target itself.
            let id = target.random(sharingPrefix: 40 + index % 20, using: &random)
            attackers.append(DHTPeer(id: id, address: DHTAddress(ipv4: 203, 0, UInt8(index), 1, port: 1)))
        }
        let attackerIDs = Set(attackers.map(\.id))
        let honestByDistance = honest.sorted { target.isCloser($0.id, than: $1.id) }
        func answer(_ peer: DHTPeer) -> [DHTPeer]? {
            if attackerIDs.contains(peer.id) { return attackers.sorted { target.isCloser($0.id, than: $1.id) } }
            return Array(honestByDistance.prefix(20))  // an honest node knows the target's neighbourhood
        }
        let seeds = Array(attackers.prefix(3)) + Array(honestByDistance.suffix(17))

        var single = Lookup(target: target, seeds: seeds)
        _ = run(&single, answer: answer)
        #expect(!single.didAnswer(target), "one path: eclipsed")
        #expect(single.closestAnswered.allSatisfy { attackerIDs.contains($0.id) })

        var disjoint = DisjointLookup(target: target, seeds: seeds, paths: 3)
        var now: UInt64 = 0
        var asked: [DHTNodeID] = []
        for _ in 0..<10_000 where !disjoint.isFinished {
            let asks = disjoint.next(now: now)
            asked += asks.map(\.peer.id)
            for ask in asks {
                if let closer = answer(ask.peer) {
                    disjoint.answered(path: ask.path, by: ask.peer.id, closer: closer)
                }
            }
            if asks.isEmpty, let deadline = disjoint.nextDeadline(after: now) { now = deadline }
        }
        #expect(disjoint.isFinished)
        #expect(disjoint.paths.contains { $0.didAnswer(target) }, "three disjoint paths: found")
        // No node was asked by two paths (nor twice by one: every node answered at once).
        #expect(Set(asked).count == asked.count)
    }
}
