import ArgumentParser
import Foundation
import Logging
import PrivatusBench
import PrivatusProfile
import PrivatusStore

/// `privatus db check|optimize|vacuum`: maintenance of the profile's database. With no node
/// running, it unlocks the profile with the password and holds the profile lock meanwhile.
struct DbCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Maintain the profile's database.",
        subcommands: [Check.self, Optimize.self, Vacuum.self]
    )

    struct Output: Encodable {
        var ok: Bool
        var tookMs: Double
        var problems: [String]?
        var freedPages: Int?
        var dbBytes: Int?
    }

    /// Unlocks the profile, takes its lock and opens the store; then runs `body` and prints.
    static func run(
        global: GlobalOptions,
        password: PasswordOptions,
        json: Bool,
        _ body: (Store, ProfileLayout) throws -> Output
    ) async throws {
        let sink = global.bootstrapLogging()
        let layout = global.layout
        let unlocked = try Profile.unlock(layout, password: try password.source.read())
        let lock = try ProfileLock(profile: layout)
        defer { withExtendedLifetime(lock) {} }
        try sink.attachFile(layout: layout)
        let store = try Store(path: layout.databaseFile, databaseKey: unlocked.contents.keys.databaseKey)
        let clock = ContinuousClock()
        var output: Output?
        let took = try clock.measure { output = try body(store, layout) }
        guard var result = output else { return }
        result.tookMs = took.milliseconds
        result.dbBytes = store.fileBytes(path: layout.databaseFile)
        Logger(label: "privatus.db").info("database maintenance done", metadata: ["ok": "\(result.ok)"])
        if json {
            try Terminal.printJSON(result)
        } else {
            print(result.ok ? "ok (\(result.tookMs) ms)" : "problems found:")
            for problem in result.problems ?? [] { print("  \(problem)") }
        }
        if !result.ok { throw ExitCode(1) }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Integrity and foreign-key check; exit 1 on a problem.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var password: PasswordOptions
        @Flag(name: .long, help: "Print {ok, tookMs, problems, dbBytes} as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                try await DbCommand.run(global: global, password: password, json: json) { store, _ in
                    let problems = try store.check()
                    return Output(ok: problems.isEmpty, tookMs: 0, problems: problems)
                }
            }
        }
    }

    struct Optimize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "PRAGMA optimize and ANALYZE.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var password: PasswordOptions
        @Flag(name: .long, help: "Print {ok, tookMs, dbBytes} as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                try await DbCommand.run(global: global, password: password, json: json) { store, _ in
                    try store.optimize()
                    return Output(ok: true, tookMs: 0)
                }
            }
        }
    }

    struct Vacuum: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Incremental vacuum: return free pages to the disk.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var password: PasswordOptions
        @Flag(name: .long, help: "Print {ok, tookMs, freedPages, dbBytes} as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                try await DbCommand.run(global: global, password: password, json: json) { store, _ in
                    Output(ok: true, tookMs: 0, freedPages: try store.vacuum())
                }
            }
        }
    }
}
