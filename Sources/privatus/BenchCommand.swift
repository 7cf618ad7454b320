import ArgumentParser
import Foundation
import PrivatusBench
import PrivatusCrypto

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a whole-system benchmark suite (needs no profile).",
        discussion: "Suites available now: crypto, sessions, storage."
    )

    static let suites = ["crypto", "sessions", "storage"]

    @Argument(help: "The suite to run: crypto, sessions or storage.")
    var suite: String

    @Flag(name: .long, help: "Print one JSON object of figures.")
    var json = false

    @Option(name: .long, help: "Seconds spent measuring each figure.")
    var secondsPerFigure: Double = 0.5

    @Option(name: .long, help: "How many keystore unlocks to time (median).")
    var unlockRuns: Int = 3

    @Option(name: .long, help: "storage: how many messages to store (over 1,000 conversations).")
    var messages: Int = 1_000_000

    @Flag(name: .long, help: "Skip the reference figures of `openssl speed`.")
    var noReference = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Testing only: time the keystore unlock at scrypt N = 2^VALUE instead of the floor.", visibility: .hidden))
    var unlockLog2N: UInt8?

    func validate() throws {
        guard Self.suites.contains(suite) else {
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
        if let unlockLog2N, (try? ScryptParameters(log2N: unlockLog2N)) == nil {
            throw ValidationError("--unlock-log2-n must be between 10 and 22")
        }
    }

    func run() async throws {
        try await reportingFailures {
            var figures: [String: Double]
            let budget = Duration.milliseconds(Int(secondsPerFigure * 1000))
            switch suite {
            case "sessions":
                figures = try SessionsSuite(budget: budget).run()
            case "storage":
                figures = try StorageSuite(messages: messages).run()
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
