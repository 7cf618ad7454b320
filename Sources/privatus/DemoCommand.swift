import ArgumentParser
import Foundation
import PrivatusBench

/// `privatus demo`: a local multi-node demonstration on loopback (no profile needed).
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Two real nodes on loopback chat end to end, on temporary profiles deleted afterwards."
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            try await Demo(executable: executable) { line in print(line) }.run()
        }
    }
}
