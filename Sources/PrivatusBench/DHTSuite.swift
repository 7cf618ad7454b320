import Foundation
import PrivatusCore
import PrivatusDHT
import PrivatusNode

/// `privatus bench dht`: the DHT simulator (`DHTSimulator`: the real routing tables and lookup
/// state machines, a simulated clock, latency, loss and churn) at `nodes` nodes.
///
/// - `success_rate`, `hops_p50`, `hops_p99`, `lookup_ms_p50`/`_p99` (simulated time),
///   `requests_per_lookup`: `lookups` node lookups, each from a random node for a random node's
///   identifier, found when the target itself answered.
/// - `churn_success_rate` (one path) and `churn_success_rate_disjoint` (3 disjoint paths, as
///   bundle and presence lookups run): while a fifth of the nodes leave without notice, in 20
///   steps, lookups between nodes still online.
/// A lookup never targets its own origin.
/// - `lookups_per_s`: lookups simulated per second of wall-clock time; `build_s`: wall-clock
///   time to grow the network (each node joins by looking itself up).
public struct DHTSuite: Sendable {
    public var nodes = 1_000
    public var lookups = 1_000
    public var seed: UInt64 = 1
    public var loss = 0.0

    public init() {}

    public func run() -> [String: Double] {
        var configuration = DHTSimulator.Configuration()
        configuration.seed = seed
        configuration.loss = loss
        let simulator = DHTSimulator(configuration: configuration)
        let clock = ContinuousClock()
        let built = clock.measure { simulator.grow(to: nodes) }

        var outcomes: [DHTSimulator.Outcome] = []
        let measured = clock.measure {
            for _ in 0..<lookups {
                let origin = simulator.randomOnlineNode()
                outcomes.append(simulator.lookup(from: origin, target: simulator.randomTarget(for: origin)))
            }
        }

        var churned: [DHTSimulator.Outcome] = []
        var churnedDisjoint: [DHTSimulator.Outcome] = []
        let steps = 20
        let leaving = nodes / 5
        for step in 0..<steps {
            simulator.churn(leaving / steps + (step < leaving % steps ? 1 : 0))
            for round in 0..<max(1, lookups / steps) {
                let origin = simulator.randomOnlineNode()
                let target = simulator.randomTarget(for: origin)
                // Either kind first, in turn: the first one's timeouts clean the origin's table
                // for the second.
                if round % 2 == 0 {
                    churned.append(simulator.lookup(from: origin, target: target))
                    churnedDisjoint.append(simulator.lookup(from: origin, target: target, paths: 3))
                } else {
                    churnedDisjoint.append(simulator.lookup(from: origin, target: target, paths: 3))
                    churned.append(simulator.lookup(from: origin, target: target))
                }
            }
        }

        func rate(_ outcomes: [DHTSimulator.Outcome]) -> Double {
            Double(outcomes.filter(\.found).count) / Double(max(1, outcomes.count))
        }
        let hops = outcomes.filter(\.found).map { Double($0.hops) }
        let durations = outcomes.map { Double($0.duration) }
        return [
            "nodes": Double(nodes),
            "lookups": Double(lookups),
            "loss": loss,
            "success_rate": rate(outcomes),
            "hops_p50": hops.isEmpty ? 0 : StorageSuite.percentile(hops, 0.5),
            "hops_p99": hops.isEmpty ? 0 : StorageSuite.percentile(hops, 0.99),
            "lookup_ms_p50": StorageSuite.percentile(durations, 0.5),
            "lookup_ms_p99": StorageSuite.percentile(durations, 0.99),
            "requests_per_lookup": Double(outcomes.reduce(0) { $0 + $1.requests }) / Double(max(1, outcomes.count)),
            "churn_success_rate": rate(churned),
            "churn_success_rate_disjoint": rate(churnedDisjoint),
            "lookups_per_s": Double(lookups) / measured.seconds,
            "build_s": built.seconds,
        ]
    }

    /// `--processes M`: M real `privatus run` nodes on loopback (the first the bootstrap node of
    /// the others), each publishing its bundle record; then `lookups` bundle lookups through the
    /// control API of random nodes for random other nodes' PeerIDs.
    ///
    /// - `loopback_found_rate`: lookups that found the record; `loopback_p50_ms` /
    ///   `loopback_p99_ms`: the lookup's time as the node measured it (3 disjoint paths, cookies
    ///   and signatures included), `loopback_requests_per_lookup`; `rss_mb_per_node` / `anon_mb_per_node`: median resident and
    ///   anonymous memory of the nodes after the lookups.
    public func runProcesses(executable: String, processes: Int) async throws -> [String: Double] {
        let scratch = try LocalNodeDirectory(executable: executable, prefix: "privatus-bench-dht")
        defer { scratch.remove() }
        var nodes: [LocalNode] = []
        defer { for node in nodes { node.stop() } }
        nodes.append(try scratch.start("node0", config: ["dhtExemptLoopback": true]))
        guard let entry = try await nodes[0].status().listenAddresses.first else {
            throw LocalNodeError.failed("reading the bootstrap node's address")
        }
        for index in 1..<processes {
            nodes.append(
                try scratch.start("node\(index)", config: ["dhtExemptLoopback": true, "bootstrap": [entry]]))
        }
        // Every node has joined and published its record.
        let deadline = ContinuousClock.now + .seconds(60)
        for node in nodes {
            while !(try await node.client.call("GET", "/api/v1/dht", as: DHTStatusView.self).published) {
                guard ContinuousClock.now < deadline else { throw LocalNodeError.failed("publishing bundle records") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        var peers: [String] = []
        for node in nodes { peers.append(try await node.status().peerId) }
        var random = SplitMix64(seed: seed)
        var found = 0
        var times: [Double] = []
        var requests = 0
        for _ in 0..<lookups {
            let origin = Int(random.next() % UInt64(processes))
            var target = Int(random.next() % UInt64(processes))
            while target == origin { target = Int(random.next() % UInt64(processes)) }
            let view = try await nodes[origin].client.call(
                "GET", "/api/v1/dht/lookup/\(peers[target])", as: DHTLookupView.self)
            if view.found { found += 1 }
            times.append(view.ms)
            requests += view.requests
        }
        let memory = nodes.compactMap { ProcessResources.proportionalKiB(of: $0.process.pid) }
        let resident = nodes.compactMap { ProcessResources.residentKiB(of: $0.process.pid) }.map { Double($0) / 1_024 }
        return [
            "processes": Double(processes),
            "lookups": Double(lookups),
            "loopback_found_rate": Double(found) / Double(max(1, lookups)),
            "loopback_p50_ms": StorageSuite.percentile(times, 0.5),
            "loopback_p99_ms": StorageSuite.percentile(times, 0.99),
            "loopback_requests_per_lookup": Double(requests) / Double(max(1, lookups)),
            "rss_mb_per_node": resident.isEmpty ? 0 : StorageSuite.percentile(resident, 0.5),
            "anon_mb_per_node": memory.isEmpty
                ? 0 : StorageSuite.percentile(memory.map { Double($0.anonymous) / 1_024 }, 0.5),
        ]
    }
}
