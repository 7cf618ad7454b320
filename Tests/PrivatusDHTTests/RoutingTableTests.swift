import PrivatusCore
import PrivatusDHT
import Testing

/// The routing table's rules: who gets in, who stays, what is closest.
@Suite struct RoutingTableTests {
    var random = SplitMix64(seed: 7)
    let local: DHTNodeID

    init() {
        local = DHTNodeID.random(using: &random)
    }

    /// A node in bucket `bucket` of `local`'s table, on its own /24 unless `subnet` is given.
    mutating func peer(inBucket bucket: Int, subnet: (UInt8, UInt8, UInt8)? = nil, host: UInt8 = 1) -> DHTPeer {
        let id = local.random(sharingPrefix: bucket, using: &random)
        let net = subnet ?? (10, UInt8(truncatingIfNeeded: random.next()), UInt8(truncatingIfNeeded: random.next()))
        return DHTPeer(id: id, address: DHTAddress(ipv4: net.0, net.1, net.2, host, port: 4_000))
    }

    @Test mutating func identifiersAndDistances() {
        let a = DHTNodeID.random(using: &random)
        #expect(DHTNodeID(bytes: a.bytes) == a, "bytes round-trip")
        #expect(DHTNodeID(bytes: [UInt8](repeating: 0, count: 31)) == nil)
        #expect(a.commonPrefixLength(with: a) == 256)
        for bucket in [0, 1, 63, 64, 100, 191, 255] {
            let b = a.random(sharingPrefix: bucket, using: &random)
            #expect(a.commonPrefixLength(with: b) == bucket, "bucket \(bucket)")
        }
        let zero = DHTNodeID(words: (0, 0, 0, 0))
        let one = DHTNodeID(words: (0, 0, 0, 1))
        let high = DHTNodeID(words: (1 << 63, 0, 0, 0))
        #expect(zero.isCloser(one, than: high) && !zero.isCloser(high, than: one))
        #expect(zero.distance(to: high) == high && high.distance(to: high) == zero)
    }

    @Test mutating func aNodeGetsInByAnsweringAndAFullBucketPingsItsOldestBeforeEvicting() {
        var table = RoutingTable(local: local)
        #expect(
            table.heard(from: DHTPeer(id: local, address: DHTAddress(ipv4: 10, 0, 0, 1, port: 1)), now: 0) == .refused)
        let members = (0..<20).map { _ in peer(inBucket: 0) }
        for (offset, member) in members.enumerated() {
            #expect(table.heard(from: member, now: UInt64(offset)) == .added)
        }
        #expect(table.count == 20)
        #expect(table.heard(from: members[5], now: 30) == .refreshed)

        // A newcomer while the oldest was heard from recently: it waits, nobody is pinged.
        let newcomer = peer(inBucket: 0)
        #expect(table.heard(from: newcomer, now: 1_000) == .waiting(ping: nil))
        #expect(!table.contains(newcomer.id) && table.replacements(near: newcomer.id) == [newcomer])
        // Later, the oldest has been quiet long enough: it is pinged (once), and answers: it stays.
        let later = 2 * RoutingTable.Configuration().pingAfter
        #expect(table.heard(from: newcomer, now: later) == .waiting(ping: members[0]))
        #expect(table.heard(from: peer(inBucket: 0), now: later) == .waiting(ping: nil), "one ping at a time")
        #expect(table.heard(from: members[0], now: later + 10) == .refreshed)
        #expect(table.contains(members[0].id) && !table.contains(newcomer.id))
        // The next oldest does not answer: the most recent newcomer takes its place.
        let second = peer(inBucket: 0)
        #expect(table.heard(from: second, now: later + 20) == .waiting(ping: members[1]))
        #expect(table.failed(members[1].id, now: later + 2_020) == second)
        #expect(table.contains(second.id) && !table.contains(members[1].id) && table.count == 20)
    }

    @Test mutating func aBucketHoldsAtMostTwoNodesOfOneNetworkLoopbackExemptOnlyWhenSaid() {
        var table = RoutingTable(local: local)
        let net: (UInt8, UInt8, UInt8) = (192, 0, 2)
        #expect(table.heard(from: peer(inBucket: 3, subnet: net, host: 1), now: 0) == .added)
        #expect(table.heard(from: peer(inBucket: 3, subnet: net, host: 2), now: 0) == .added)
        #expect(table.heard(from: peer(inBucket: 3, subnet: net, host: 3), now: 0) == .refused)
        #expect(table.heard(from: peer(inBucket: 4, subnet: net, host: 3), now: 0) == .added, "per bucket")
        var ipv6 = RoutingTable(local: local)
        for host in 0..<3 {
            let id = local.random(sharingPrefix: 9, using: &random)
            let address = DHTAddress(
                ip: [0x20, 0x01, 0x0d, 0xb8, 0, 1] + [UInt8](repeating: 0, count: 9) + [UInt8(host)], port: 1)!
            #expect(ipv6.heard(from: DHTPeer(id: id, address: address), now: 0) == (host < 2 ? .added : .refused))
        }

        let loopback: (UInt8, UInt8, UInt8) = (127, 0, 0)
        var strict = RoutingTable(local: local)
        var configuration = RoutingTable.Configuration()
        configuration.exemptLoopback = true
        var local = RoutingTable(local: local, configuration: configuration)
        for host in 1...5 {
            let node = peer(inBucket: 2, subnet: loopback, host: UInt8(host))
            #expect(strict.heard(from: node, now: 0) == (host <= 2 ? .added : .refused))
            #expect(local.heard(from: node, now: 0) == .added)
        }
    }

    @Test mutating func aKnownNodeCannotMoveIntoAFullNetworkAndMappedAddressesAreIPv4() {
        var table = RoutingTable(local: local)
        let net: (UInt8, UInt8, UInt8) = (192, 0, 2)
        table.heard(from: peer(inBucket: 5, subnet: net, host: 1), now: 0)
        table.heard(from: peer(inBucket: 5, subnet: net, host: 2), now: 0)
        let elsewhere = peer(inBucket: 5, subnet: (198, 51, 100), host: 3)
        table.heard(from: elsewhere, now: 0)
        // It answers again from the full network: it stays, at its old address.
        let moved = DHTPeer(id: elsewhere.id, address: DHTAddress(ipv4: 192, 0, 2, 3, port: 4_000))
        #expect(table.heard(from: moved, now: 1) == .refreshed)
        #expect(table.entry(elsewhere.id)?.peer.address == elsewhere.address)
        // From a network with room it moves.
        let roomy = DHTPeer(id: elsewhere.id, address: DHTAddress(ipv4: 203, 0, 113, 3, port: 4_000))
        table.heard(from: roomy, now: 2)
        #expect(table.entry(elsewhere.id)?.peer.address == roomy.address)

        let mapped = DHTAddress(ip: [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 127, 0, 0, 1], port: 9)
        #expect(mapped == DHTAddress(ipv4: 127, 0, 0, 1, port: 9))
        #expect(mapped?.isLoopback == true && mapped?.subnet == [127, 0, 0])
    }

    @Test mutating func aNodeThatStopsAnsweringIsDroppedAfterItsFailures() {
        var table = RoutingTable(local: local)
        let quiet = peer(inBucket: 1)
        table.heard(from: quiet, now: 0)
        #expect(table.failed(quiet.id, now: 1) == nil && table.contains(quiet.id))
        #expect(table.entry(quiet.id)?.failures == 1)
        table.heard(from: quiet, now: 2)
        #expect(table.entry(quiet.id)?.failures == 0, "an answer clears its failures")
        for attempt in 1...3 { table.failed(quiet.id, now: UInt64(2 + attempt)) }
        #expect(!table.contains(quiet.id))
    }

    @Test mutating func closestMatchesAFullSortForAnyTarget() {
        var table = RoutingTable(local: local)
        for _ in 0..<600 {
            let bucket = Int(random.next() % 12)
            table.heard(from: peer(inBucket: bucket), now: 0)
        }
        let everyone = table.peers
        #expect(everyone.count > 100)
        for round in 0..<60 {
            let target =
                round % 3 == 0
                ? local.random(sharingPrefix: Int(random.next() % 20), using: &random)
                : (round % 3 == 1 ? DHTNodeID.random(using: &random) : local)
            let expected = everyone.sorted { target.isCloser($0.id, than: $1.id) }
            for count in [1, 3, 20, 200] {
                #expect(table.closest(to: target, count: count) == Array(expected.prefix(count)))
            }
        }
    }

    @Test mutating func idleBucketsComeDueForRefresh() {
        var configuration = RoutingTable.Configuration()
        configuration.refreshInterval = 1_000
        var table = RoutingTable(local: local, configuration: configuration, now: 0)
        table.heard(from: peer(inBucket: 0), now: 500)
        table.heard(from: peer(inBucket: 2), now: 0)
        #expect(table.bucketsDueForRefresh(now: 999).isEmpty)
        #expect(
            table.bucketsDueForRefresh(now: 1_200) == [1, 2, 3], "bucket 0 active at 500; up to one past the last used")
        table.refreshed(2, now: 1_200)
        #expect(table.bucketsDueForRefresh(now: 1_300) == [1, 3])
    }
}
