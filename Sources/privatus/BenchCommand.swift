import ArgumentParser
import Foundation
import PrivatusBench
import PrivatusCrypto

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a whole-system benchmark suite (needs no profile).",
        discussion: "Suites available now: crypto, sessions, storage, transport, node, e2e, dht, files, monitor."
    )

    static let suites = ["crypto", "sessions", "storage", "transport", "node", "e2e", "dht", "files", "monitor"]
    /// The other process of `bench transport`, which that suite starts itself (internal).
    static let transportPeer = "transport-peer"

    @Argument(help: "The suite to run: crypto, sessions, storage, transport, node, e2e, dht, files or monitor.")
    var suite: String

    @Flag(name: .long, help: "Print one JSON object of figures.")
    var json = false

    @Option(name: .long, help: "Seconds spent measuring each figure.")
    var secondsPerFigure: Double = 0.5

    @Option(name: .long, help: "How many keystore unlocks to time (median).")
    var unlockRuns: Int = 3

    @Option(name: .long, help: "storage: how many messages to store (over 1,000 conversations).")
    var messages: Int = 1_000_000

    @Option(name: .long, help: "node: how many times a node is started and measured.")
    var nodeRuns = 7

    @Option(name: .long, help: "node: how many pairs of fresh nodes time their first message.")
    var nodePairs = 5

    @Option(name: .long, help: "e2e: messages sent as fast as possible (throughput and CPU).")
    var e2eMessages = 10_000

    @Option(name: .long, help: "e2e: messages sent at --e2e-rate per second (latency).")
    var e2ePaced = 2_000

    @Option(name: .long, help: "dht: how many simulated nodes.")
    var nodes = 1_000

    @Option(name: .long, help: "dht: how many lookups are timed (and as many again under churn).")
    var lookups = 1_000

    @Option(name: .long, help: "dht: the share of simulated messages lost (0 to 0.5).")
    var loss = 0.0

    @Option(name: .long, help: "dht: the simulator's seed (the same seed gives the same run).")
    var seed: UInt64 = 1

    @Option(name: .long, help: "dht: start this many real nodes on loopback instead of simulating.")
    var processes: Int?

    @Option(name: .long, help: "e2e: the rate (messages/s) the latency phase sends at.")
    var e2eRate = 1_000

    @Option(name: .long, help: "e2e: API clients sending at once in the throughput phase.")
    var e2eConcurrency = 256

    @Flag(name: .long, help: "e2e: one connection per API request (as the CLI does), not kept alive.")
    var e2eFreshConnections = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "e2e: run the nodes from this privatus executable (another build), driven by this bench.",
            visibility: .hidden))
    var e2eNode: String?

    @Option(name: .long, help: "files: the size of the file sent, in bytes (default 1 GiB).")
    var size: Int = 1 << 30

    @Option(name: .long, help: "monitor: once-a-second monitoring ticks timed.")
    var ticks = 600

    @Option(name: .long, help: "monitor: seconds a real node is left alone for node_idle_cpu_percent.")
    var idleSeconds = 20.0

    @Option(name: .long, help: "monitor: messages waiting in the outbox for outbox_counts_backlog_us.")
    var backlog = 10_000

    @Option(name: .long, help: "transport: threads of the event loop group in each process.")
    var eventLoopThreads: Int = 1

    @Option(name: .long, help: "transport: dials timed for handshake_ms.")
    var handshakes: Int = 300

    @Option(name: .long, help: "transport: round trips timed, secured and plain each.")
    var roundTrips: Int = 20_000

    @Option(name: .long, help: "transport: MiB moved in each bulk round, secured and plain each.")
    var bulkMib: Int = 256

    @Option(name: .long, help: "transport: idle links held open for mem_per_conn_kb.")
    var idleLinks: Int = 1000

    @Flag(
        name: .long,
        help: ArgumentHelp(
            "transport, an experiment: run Swift concurrency's tasks on the event loops.", visibility: .hidden))
    var tasksOnEventLoops = false

    @Option(name: .long, help: ArgumentHelp("e2e-floor-peer (internal): sender or receiver.", visibility: .hidden))
    var floorRole: String?

    @Option(name: .long, help: ArgumentHelp("e2e-floor-peer (internal): where its file goes.", visibility: .hidden))
    var floorDirectory: String?

    @Option(name: .long, help: ArgumentHelp("e2e-floor-peer (internal): the receiver's port.", visibility: .hidden))
    var floorNext: Int?

    @Flag(name: .long, help: "Skip the reference figures (`openssl speed`; e2e: the latency floor).")
    var noReference = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Testing only: time the keystore unlock at scrypt N = 2^VALUE instead of the floor.", visibility: .hidden))
    var unlockLog2N: UInt8?

    func validate() throws {
        guard Self.suites.contains(suite) || suite == Self.transportPeer || suite == E2EFloor.peerSuite else {
            throw ValidationError(
                "unknown or not yet available suite '\(suite)'; available: \(Self.suites.joined(separator: ", "))")
        }
        guard secondsPerFigure > 0, secondsPerFigure <= 60 else {
            throw ValidationError("--seconds-per-figure must be in (0, 60]")
        }
        guard (100...100_000_000).contains(messages) else {
            throw ValidationError("--messages must be 100 to 100,000,000")
        }
        guard (1...50).contains(unlockRuns) else { throw ValidationError("--unlock-runs must be 1 to 50") }
        guard (1...64).contains(eventLoopThreads) else { throw ValidationError("--event-loop-threads must be 1 to 64") }
        guard (1...100_000).contains(handshakes) else { throw ValidationError("--handshakes must be 1 to 100,000") }
        guard (1...10_000_000).contains(roundTrips) else {
            throw ValidationError("--round-trips must be 1 to 10,000,000")
        }
        guard (1...65_536).contains(bulkMib) else { throw ValidationError("--bulk-mib must be 1 to 65,536") }
        guard (1...100_000).contains(idleLinks) else { throw ValidationError("--idle-links must be 1 to 100,000") }
        guard (1...1_024).contains(e2eConcurrency) else {
            throw ValidationError("--e2e-concurrency must be 1 to 1,024")
        }
        guard (1...10_000_000).contains(e2eMessages) else {
            throw ValidationError("--e2e-messages must be 1 to 10,000,000")
        }
        guard (1...10_000_000).contains(e2ePaced) else { throw ValidationError("--e2e-paced must be 1 to 10,000,000") }
        guard (1...100_000).contains(e2eRate) else { throw ValidationError("--e2e-rate must be 1 to 100,000") }
        guard (2...1_000_000).contains(nodes) else { throw ValidationError("--nodes must be 2 to 1,000,000") }
        guard (1...10_000_000).contains(lookups) else { throw ValidationError("--lookups must be 1 to 10,000,000") }
        guard (0...0.5).contains(loss) else { throw ValidationError("--loss must be 0 to 0.5") }
        guard (1...100_000).contains(ticks) else { throw ValidationError("--ticks must be 1 to 100,000") }
        guard (1...1_000_000).contains(backlog) else { throw ValidationError("--backlog must be 1 to 1,000,000") }
        guard (1...3_600).contains(idleSeconds) else { throw ValidationError("--idle-seconds must be 1 to 3,600") }
        guard (1 << 20...64 << 30).contains(size) else { throw ValidationError("--size must be 1 MiB to 64 GiB") }
        if let processes, !(2...200).contains(processes) {
            throw ValidationError("--processes must be 2 to 200")
        }
        if let floorNext, !(1...65_535).contains(floorNext) {
            throw ValidationError("--floor-next must be a port, 1 to 65,535")
        }
        if let unlockLog2N, (try? ScryptParameters(log2N: unlockLog2N)) == nil {
            throw ValidationError("--unlock-log2-n must be between 10 and 22")
        }
    }

    func run() async throws {
        if suite == Self.transportPeer {
            try await reportingFailures {
                try await TransportPeer.run(
                    eventLoopThreads: eventLoopThreads, maximumConnections: idleLinks,
                    tasksOnEventLoops: tasksOnEventLoops)
            }
            return
        }
        if suite == E2EFloor.peerSuite {
            try await reportingFailures {
                guard let role = floorRole.flatMap(E2EFloor.Role.init(rawValue:)), let floorDirectory else {
                    throw ValidationError("e2e-floor-peer needs --floor-role sender|receiver and --floor-directory")
                }
                try E2EFloor.runPeer(role: role, directory: floorDirectory, next: floorNext)
            }
            return
        }
        try await reportingFailures {
            var figures: [String: Double]
            let budget = Duration.milliseconds(Int(secondsPerFigure * 1000))
            switch suite {
            case "sessions":
                figures = try SessionsSuite(budget: budget).run()
            case "storage":
                figures = try StorageSuite(messages: messages).run()
            case "transport":
                var options = TransportSuite.Options()
                options.eventLoopThreads = eventLoopThreads
                options.handshakes = handshakes
                options.roundTrips = roundTrips
                options.bulkBytes = bulkMib << 20
                options.idleLinks = idleLinks
                options.tasksOnEventLoops = tasksOnEventLoops
                let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
                figures = try await TransportSuite(options: options, peerExecutable: executable).run()
            case "node":
                var suite = NodeSuite(
                    executable: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                suite.runs = nodeRuns
                suite.pairs = nodePairs
                figures = try await suite.run()
            case "dht":
                var suite = DHTSuite()
                suite.nodes = nodes
                suite.lookups = lookups
                suite.loss = loss
                suite.seed = seed
                if let processes {
                    figures = try await suite.runProcesses(
                        executable: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
                        processes: processes)
                } else {
                    figures = suite.run()
                }
            case "e2e":
                var suite = E2ESuite(
                    executable: try e2eNode ?? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                suite.messages = e2eMessages
                suite.paced = e2ePaced
                suite.rate = e2eRate
                suite.concurrency = e2eConcurrency
                suite.keepAlive = !e2eFreshConnections
                if !noReference {
                    suite.floorExecutable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
                }
                figures = try await suite.run()
            case "monitor":
                var suite = MonitorSuite(
                    executable: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                suite.budget = budget
                suite.ticks = ticks
                suite.idleSeconds = idleSeconds
                suite.backlog = backlog
                figures = try await suite.run()
            case "files":
                var suite = FilesSuite(
                    executable: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                suite.size = size
                figures = try await suite.run()
            default:
                let parameters = try unlockLog2N.map { try ScryptParameters(log2N: $0) } ?? .floor
                figures = try CryptoSuite(budget: budget, unlockRuns: unlockRuns, unlockParameters: parameters).run()
                if !noReference {
                    figures.merge(OpenSSLReference.run()) { $1 }
                }
            }
            let report = BenchReport(suite: suite, figures: figures)
            if json {
                try Terminal.printJSON(report)
            } else {
                print(report.text)
            }
        }
    }
}
