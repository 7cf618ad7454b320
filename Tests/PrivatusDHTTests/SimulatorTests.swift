import PrivatusCore
import PrivatusDHT
import PrivatusTesting
import Testing

/// The simulator runs the real routing tables and lookups over a simulated network. Each run
/// takes seconds of CPU in a debug build, so it runs on a thread of its own (``onOwnThread(_:)``).
@Suite struct SimulatorTests {
    /// `count` lookups from random online nodes for random online nodes' identifiers.
    static func lookups(_ count: Int, in simulator: DHTSimulator, paths: Int = 1) -> [DHTSimulator.Outcome] {
        (0..<count).map { _ in
            let origin = simulator.randomOnlineNode()
            let target = simulator.randomTarget(for: origin)
            return simulator.lookup(from: origin, target: target, paths: paths)
        }
    }

    @Test func theSameSeedGivesTheSameRunAndAnotherSeedAnother() async {
        @Sendable func run(seed: UInt64) -> ([DHTSimulator.Outcome], Int, UInt64) {
            var configuration = DHTSimulator.Configuration()
            configuration.seed = seed
            configuration.loss = 0.02
            let simulator = DHTSimulator(configuration: configuration)
            simulator.grow(to: 300)
            simulator.churn(30)
            let outcomes = Self.lookups(40, in: simulator, paths: 3)
            return (outcomes, simulator.messages, simulator.now)
        }
        let (first, second, other) = await onOwnThread { (run(seed: 5), run(seed: 5), run(seed: 6)) }
        #expect(first.0 == second.0 && first.1 == second.1 && first.2 == second.2)
        #expect(other.0 != first.0)
    }

    @Test func aThousandNodesFindEachOtherAndStillDoAfterAFifthLeave() async {
        struct Run: Sendable {
            var nodeCount = 0
            var smallestTable = 0
            var calm: [DHTSimulator.Outcome] = []
            var onlineAfterChurn = 0
            var churned: [DHTSimulator.Outcome] = []
        }
        let run = await onOwnThread {
            var run = Run()
            var configuration = DHTSimulator.Configuration()
            configuration.seed = 1_000
            let simulator = DHTSimulator(configuration: configuration)
            simulator.grow(to: 1_000)
            run.nodeCount = simulator.nodeCount
            run.smallestTable = (0..<simulator.nodeCount).map { simulator.table(of: $0).count }.min() ?? 0
            run.calm = Self.lookups(200, in: simulator)
            // A fifth of the nodes leave without notice, while lookups go on.
            for _ in 0..<10 {
                simulator.churn(20)
                run.churned += Self.lookups(20, in: simulator, paths: 3)
            }
            run.onlineAfterChurn = simulator.onlineCount
            return run
        }
        #expect(run.nodeCount == 1_000)
        // Tables are populated: every node knows at least k others.
        #expect(run.smallestTable >= 20)

        #expect(run.calm.count == 200)
        #expect(run.calm.allSatisfy { $0.found }, "\(run.calm.filter { !$0.found }.count) of 200 not found")
        let hops = run.calm.map(\.hops).sorted()
        #expect(hops[hops.count / 2] <= 4)

        #expect(run.onlineAfterChurn == 800)
        #expect(run.churned.count == 200)
        let found = run.churned.filter(\.found).count
        #expect(Double(found) / Double(run.churned.count) >= 0.99, "\(found) of \(run.churned.count)")
    }
}
