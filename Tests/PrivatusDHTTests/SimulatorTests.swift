import PrivatusCore
import PrivatusDHT
import Testing

/// The simulator runs the real routing tables and lookups over a simulated network.
@Suite struct SimulatorTests {
    /// `count` lookups from random online nodes for random online nodes' identifiers.
    func lookups(_ count: Int, in simulator: DHTSimulator, paths: Int = 1) -> [DHTSimulator.Outcome] {
        (0..<count).map { _ in
            let origin = simulator.randomOnlineNode()
            let target = simulator.randomTarget(for: origin)
            return simulator.lookup(from: origin, target: target, paths: paths)
        }
    }

    @Test func theSameSeedGivesTheSameRunAndAnotherSeedAnother() {
        func run(seed: UInt64) -> ([DHTSimulator.Outcome], Int, UInt64) {
            var configuration = DHTSimulator.Configuration()
            configuration.seed = seed
            configuration.loss = 0.02
            let simulator = DHTSimulator(configuration: configuration)
            simulator.grow(to: 300)
            simulator.churn(30)
            let outcomes = lookups(40, in: simulator, paths: 3)
            return (outcomes, simulator.messages, simulator.now)
        }
        let first = run(seed: 5)
        let second = run(seed: 5)
        #expect(first.0 == second.0 && first.1 == second.1 && first.2 == second.2)
        let other = run(seed: 6)
        #expect(other.0 != first.0)
    }

    @Test func aThousandNodesFindEachOtherAndStillDoAfterAFifthLeave() {
        var configuration = DHTSimulator.Configuration()
        configuration.seed = 1_000
        let simulator = DHTSimulator(configuration: configuration)
        simulator.grow(to: 1_000)
        #expect(simulator.nodeCount == 1_000)
        // Tables are populated: every node knows at least k others.
        #expect((0..<1_000).allSatisfy { simulator.table(of: $0).count >= 20 })

        let calm = lookups(200, in: simulator)
        #expect(calm.allSatisfy { $0.found }, "\(calm.filter { !$0.found }.count) of 200 not found")
        let hops = calm.map(\.hops).sorted()
        #expect(hops[hops.count / 2] <= 4)

        // A fifth of the nodes leave without notice, while lookups go on.
        var churned: [DHTSimulator.Outcome] = []
        for _ in 0..<10 {
            simulator.churn(20)
            churned += lookups(20, in: simulator, paths: 3)
        }
        #expect(simulator.onlineCount == 800)
        let found = churned.filter(\.found).count
        #expect(Double(found) / Double(churned.count) >= 0.99, "\(found) of \(churned.count)")
    }
}
