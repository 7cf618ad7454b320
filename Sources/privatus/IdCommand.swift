import ArgumentParser
import Logging
import PrivatusProfile

struct IdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "id",
        abstract: "Unlock the keystore, check the public identity against it and show it."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var password: PasswordOptions

    @Flag(name: .long, help: "Print {peerId, name, invite, fingerprint} as JSON.")
    var json = false

    func run() async throws {
        let sink = global.bootstrapLogging()
        try await reportingFailures {
            let layout = global.layout
            let secret = try password.source.read()
            let profile = try Profile.unlock(layout, password: secret)
            try sink.attachFile(layout: layout)
            let logger = Logger(label: "privatus.id")
            logger.info("keystore unlocked and public identity checked")
            logger.debug("profile identity", metadata: ["peerId": "\(profile.peerID.hex)"])
            if json {
                try Terminal.printJSON(IdentityOutput(profile, full: true))
            } else {
                print("name:        \(profile.name)")
                print("peer id:     \(profile.peerID.hex)")
                print("fingerprint: \(profile.peerID.fingerprint)")
                print("invite:      \(profile.invite)")
            }
        }
    }
}
