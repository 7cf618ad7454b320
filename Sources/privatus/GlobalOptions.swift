import ArgumentParser
import Foundation
import Logging
import PrivatusCrypto
import PrivatusProfile

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "The profile directory (default: $PRIVATUS_HOME, else $XDG_DATA_HOME/privatus, else ~/.local/share/privatus)."
    )
    var profile: String?

    @Option(
        name: .long,
        help: "trace, debug, info, notice, warning or error (default: info to the log file, warning to stderr).")
    var logLevel: Logger.Level?

    var layout: ProfileLayout {
        ProfileLayout.resolve(flag: profile, environment: ProcessInfo.processInfo.environment)
    }

    /// Bootstraps swift-log once: the log file receives `--log-level` (default info) and above,
    /// standard error `--log-level` when given, else warnings and above.
    func bootstrapLogging() -> LogSink {
        let sink = LogSink(fileLevel: logLevel ?? .info, stderrLevel: logLevel ?? .warning)
        LoggingSystem.bootstrap { label in PrivatusLogHandler(label: label, sink: sink) }
        return sink
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Testing only: a fixed scrypt cost, which may be below the floor.
struct KeystoreCostOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Testing only: seal the keystore with scrypt N = 2^VALUE (10–22) instead of the calibrated cost. Below 17 it weakens the password protection.",
            valueName: "log2-n"
        )
    )
    var insecureScryptLog2N: UInt8?

    func cost() throws -> KeystoreCost {
        guard let log2N = insecureScryptLog2N else { return .calibrated }
        guard let parameters = try? ScryptParameters(log2N: log2N) else {
            throw ValidationError("--insecure-scrypt-log2-n must be between 10 and 22")
        }
        if !parameters.meetsFloor {
            Terminal.warn(
                "warning: --insecure-scrypt-log2-n \(log2N) is below the floor of 17: this profile's password protection is weak; use it for tests only"
            )
        }
        return .fixed(parameters)
    }
}
