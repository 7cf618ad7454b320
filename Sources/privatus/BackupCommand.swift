import ArgumentParser
import Foundation
import Logging
import PrivatusBench
import PrivatusCrypto
import PrivatusProfile
import PrivatusStore

/// `privatus backup create FILE | restore FILE`: an encrypted backup of a whole profile.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Create or restore an encrypted backup of a profile.",
        subcommands: [Create.self, Restore.self]
    )

    struct Output: Encodable {
        var bytes: Int
        var tookMs: Double
    }

    static func report(_ output: Output, json: Bool, verb: String) throws {
        if json {
            try Terminal.printJSON(output)
        } else {
            print("\(verb) \(output.bytes) bytes in \(output.tookMs) ms")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write an encrypted backup of the profile to FILE.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var password: PasswordOptions
        @OptionGroup var cost: KeystoreCostOptions
        @Argument(help: "The backup file to write (must not exist).") var file: String
        @Flag(name: .long, help: "Print {bytes, tookMs} as JSON.") var json = false

        func run() async throws {
            let sink = global.bootstrapLogging()
            try await reportingFailures {
                let parameters: ScryptParameters? = if case .fixed(let fixed) = try cost.cost() { fixed } else { nil }
                guard !FileManager.default.fileExists(atPath: file) else {
                    throw CLIFailure(status: 1, message: "\(file) already exists; a backup never overwrites a file")
                }
                let layout = global.layout
                let secret = try password.source.read()
                let unlocked = try Profile.unlock(layout, password: secret)
                let lock = try ProfileLock(profile: layout)
                defer { withExtendedLifetime(lock) {} }
                try sink.attachFile(layout: layout)
                let clock = ContinuousClock()
                var bytes = 0
                let took = try clock.measure {
                    let store = try Store(path: layout.databaseFile, databaseKey: unlocked.contents.keys.databaseKey)
                    let snapshot = layout.directory + "/backup-snapshot.tmp-\(getpid())"
                    defer { try? FileManager.default.removeItem(atPath: snapshot) }
                    try store.snapshot(to: snapshot)
                    bytes = try ProfileBackup.create(
                        layout: layout, databaseSnapshot: snapshot, to: file, password: secret, parameters: parameters)
                }
                Logger(label: "privatus.backup").notice("backup written", metadata: ["bytes": "\(bytes)"])
                try BackupCommand.report(
                    Output(bytes: bytes, tookMs: took.milliseconds), json: json, verb: "wrote"
                )
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore FILE into a new profile (the --profile directory must be empty or new)."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var password: PasswordOptions
        @Argument(help: "The backup file to restore.") var file: String
        @Flag(name: .long, help: "Print {bytes, tookMs} as JSON.") var json = false

        func run() async throws {
            let sink = global.bootstrapLogging()
            try await reportingFailures {
                let layout = global.layout
                let secret = try password.source.read()
                let clock = ContinuousClock()
                let took = try clock.measure {
                    try ProfileBackup.restore(from: file, to: layout, password: secret)
                    // The restored profile must open as a whole: keystore, identity, database.
                    let unlocked = try Profile.unlock(layout, password: secret)
                    let store = try Store(path: layout.databaseFile, databaseKey: unlocked.contents.keys.databaseKey)
                    let problems = try store.check()
                    guard problems.isEmpty else {
                        throw CLIFailure(status: 1, message: "the restored database has problems")
                    }
                }
                try sink.attachFile(layout: layout)
                Logger(label: "privatus.backup").notice("backup restored")
                let bytes = (try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int ?? 0
                try BackupCommand.report(
                    Output(bytes: bytes, tookMs: took.milliseconds), json: json,
                    verb: "restored")
            }
        }
    }
}
