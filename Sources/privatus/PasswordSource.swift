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
                bytes = try FileIO.readFile(file, maximumSize: Self.maximumFileSize)
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

    /// Reads a line from the terminal with echo turned off, restoring the terminal afterwards.
    static func promptWithoutEcho(_ prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        let hasTerminal = tcgetattr(STDIN_FILENO, &saved) == 0
        if hasTerminal {
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        }
        defer {
            if hasTerminal { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved) }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine(strippingNewline: true) else {
            throw CLIFailure(status: 1, message: "no password was entered")
        }
        return line
    }
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
