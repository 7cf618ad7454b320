import ArgumentParser
import Foundation
import PrivatusProfile

#if canImport(Glibc)
import Glibc
#endif

/// Where a password comes from: `--password-file FILE`, else an environment variable, else a
/// prompt on the terminal with echo off.
struct PasswordSource {
    /// The longest password file read.
    static let maximumFileSize = 4096

    var file: String?
    var environmentVariable: String
    var prompt: String
    var flagName: String

    /// Reads the password. With `confirm`, a prompt asks twice (for new passwords).
    func read(confirm: Bool = false) throws -> String {
        if let file {
            let bytes: [UInt8]
            do {
                bytes = try FileIO.readFile(file, maximumSize: Self.maximumFileSize, kind: .anyStream)
            } catch .fileTooLarge {
                throw CLIFailure(
                    status: 1, message: "the password file \(file) is larger than \(Self.maximumFileSize) bytes")
            } catch {
                throw CLIFailure(status: 1, message: "cannot read the password file: \(error)")
            }
            var password = bytes[...]
            if password.last == 0x0a { password = password.dropLast() }
            guard let text = String(validating: password, as: UTF8.self) else {
                throw CLIFailure(status: 1, message: "the password file \(file) is not UTF-8 text")
            }
            return text
        }
        if let value = ProcessInfo.processInfo.environment[environmentVariable] {
            return value
        }
        guard isatty(STDIN_FILENO) == 1 else {
            throw CLIFailure(
                status: 1,
                message:
                    "no password given and no terminal to ask on: use \(flagName) FILE or set \(environmentVariable)"
            )
        }
        let first = try Self.promptWithoutEcho(prompt)
        if confirm {
            let second = try Self.promptWithoutEcho("Repeat: ")
            guard first == second else { throw CLIFailure(status: 1, message: "the passwords do not match") }
        }
        return first
    }

    /// Reads a line from the terminal with echo turned off, restoring the terminal afterwards,
    /// also when the user interrupts with Ctrl-C.
    static func promptWithoutEcho(_ prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        let hasTerminal = tcgetattr(STDIN_FILENO, &saved) == 0
        if hasTerminal {
            terminalToRestore = saved
            for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { Glibc.signal(signal, restoreTerminalAndExit) }
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        }
        defer {
            if hasTerminal {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
                for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { Glibc.signal(signal, SIG_DFL) }
            }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine(strippingNewline: true) else {
            throw CLIFailure(status: 1, message: "no password was entered")
        }
        return line
    }
}

/// The terminal settings to put back if a signal ends the process during a prompt.
nonisolated(unsafe) private var terminalToRestore = termios()

/// A signal handler: restores echo and exits with 128 + the signal, as the default action would.
private func restoreTerminalAndExit(_ signal: Int32) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &terminalToRestore)
    _exit(128 + signal)
}

/// `--password-file` for the commands that open the keystore.
struct PasswordOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Read the password from FILE (one trailing newline is not part of it); else $PRIVATUS_PASSWORD, else a prompt."
    )
    var passwordFile: String?

    var source: PasswordSource {
        PasswordSource(
            file: passwordFile, environmentVariable: "PRIVATUS_PASSWORD", prompt: "Password: ",
            flagName: "--password-file")
    }
}
