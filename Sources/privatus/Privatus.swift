import ArgumentParser
import CPrivatusSystem
import PrivatusProfile

@main
struct Privatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privatus",
        abstract: "A decentralized, end-to-end encrypted peer-to-peer messenger.",
        subcommands: [
            InitCommand.self, IdCommand.self, PasswdCommand.self, RunCommand.self, StatusCommand.self,
            ContactsCommand.self, SendCommand.self, RetryCommand.self, MessagesCommand.self, WatchCommand.self,
            FilesCommand.self,
            DbCommand.self,
            BackupCommand.self,
            DHTCommand.self, BenchCommand.self, DemoCommand.self,
        ]
    )

    /// Declared here so that `privatus --profile DIR init` works; each subcommand declares the
    /// same group, which receives the values given before or after its name.
    @OptionGroup var global: GlobalOptions

    static func main() async {
        FileIO.restrictUmask()
        _ = privatus_tune_allocator()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
