import ArgumentParser
import Logging
import PrivatusProfile
import PrivatusStore

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a profile: identity, keystore and configuration."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var password: PasswordOptions
    @OptionGroup var cost: KeystoreCostOptions

    @Option(name: .long, help: "Your display name (1 to 64 characters).")
    var name: String = "me"

    @Flag(name: .long, help: "Print {peerId, name} as JSON.")
    var json = false

    func run() async throws {
        let sink = global.bootstrapLogging()
        try await reportingFailures {
            let cost = try cost.cost()
            let secret = try password.source.read(confirm: true)
            let layout = global.layout
            let profile = try Profile.create(at: layout, name: name, password: secret, cost: cost)
            _ = try Store(path: layout.databaseFile, databaseKey: profile.contents.keys.databaseKey)
            try sink.attachFile(layout: layout)
            let logger = Logger(label: "privatus.init")
            logger.info("profile created", metadata: ["scrypt": "\(profile.parameters)"])
            logger.debug("profile identity", metadata: ["peerId": "\(profile.peerID.hex)"])
            if json {
                try Terminal.printJSON(IdentityOutput(profile))
            } else {
                print("Created the profile of \(profile.name) in \(layout.directory)")
                print("peer id: \(profile.peerID.hex)")
                print("invite:  \(profile.invite)")
            }
        }
    }
}

/// The JSON of `init` and `id`.
struct IdentityOutput: Encodable {
    var peerId: String
    var name: String
    var invite: String?
    var fingerprint: String?

    init(_ profile: UnlockedProfile, full: Bool = false) {
        self.peerId = profile.peerID.hex
        self.name = profile.name
        if full {
            self.invite = profile.invite
            self.fingerprint = profile.peerID.fingerprint
        }
    }
}
