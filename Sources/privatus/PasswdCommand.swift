import ArgumentParser
import Logging
import PrivatusProfile

struct PasswdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Change the password: re-seal the keystore atomically under a new one."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var password: PasswordOptions
    @OptionGroup var cost: KeystoreCostOptions

    @Option(name: .long, help: "Read the new password from FILE; else $PRIVATUS_NEW_PASSWORD, else a prompt.")
    var newPasswordFile: String?

    func run() async throws {
        let sink = global.bootstrapLogging()
        try await reportingFailures {
            let cost = try cost.cost()
            let layout = global.layout
            let old = try password.source.read()
            let newSource = PasswordSource(
                file: newPasswordFile,
                environmentVariable: "PRIVATUS_NEW_PASSWORD",
                prompt: "New password: ",
                flagName: "--new-password-file"
            )
            // Check the old password before asking for a new one.
            let unlocked = try Profile.unlock(layout, password: old)
            let new = try newSource.read(confirm: true)
            let profile = try Profile.changePassword(of: unlocked, to: new, cost: cost)
            try sink.attachFile(layout: layout)
            Logger(label: "privatus.passwd").notice("password changed", metadata: ["scrypt": "\(profile.parameters)"])
            print("Password changed.")
        }
    }
}
