import ArgumentParser
import Foundation
import PrivatusCrypto
import PrivatusNode
import PrivatusProfile

#if canImport(Glibc)
import Glibc
#endif

/// Standard output and error, and the one-line failures with the exit statuses of CLI.md.
enum Terminal {
    static func warn(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Text from others (messages, names) made safe for a terminal line: control and format
    /// characters (escape sequences, bidi overrides, zero-width characters) become U+FFFD and
    /// line breaks "⏎", so a peer cannot rewrite the screen or fake another line.
    static func printable(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator:
                if scalar == "\n" {
                    out.append(contentsOf: " ⏎ ".unicodeScalars)
                } else {
                    out.append("\u{FFFD}")
                }
            default:
                out.append(scalar)
            }
        }
        return String(out)
    }

    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Prints `privatus: <message>` on stderr and returns the exit code for `error`.
    static func fail(_ error: any Error) -> ExitCode {
        let (status, message) = classify(error)
        warn("privatus: \(message)")
        return ExitCode(status)
    }

    /// The exit status of CLI.md and a one-line message for an error.
    static func classify(_ error: any Error) -> (Int32, String) {
        switch error {
        case let error as ProfileError:
            switch error {
            case .keystore(.wrongPassword): (4, error.description)
            case .keystore(.emptyPassword), .keystore(.invalidName), .keystore(.derivationFailed),
                .keystore(.sealFailed):
                (1, error.description)
            case .keystore, .missing, .identityMismatch, .damagedFile, .fileTooLarge: (5, error.description)
            case .exists, .inUse: (6, error.description)
            case .notEmpty, .concurrentChange, .io: (1, error.description)
            }
        case let error as BackupError:
            (error == .wrongPassword ? 4 : 1, error.description)
        case let error as CLIFailure:
            (error.status, error.message)
        case let error as ControlClientError:
            (error.description == ControlClientError.noNode.description ? 3 : 1, error.description)
        case let error as NodeError:
            (1, error.description)
        default:
            (1, String(describing: error))
        }
    }
}

/// A failure the CLI reports with its own message and status.
struct CLIFailure: Error {
    var status: Int32
    var message: String
}

extension AsyncParsableCommand {
    /// Runs `body`, turning every failure into its message and exit status.
    func reportingFailures(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            throw Terminal.fail(error)
        }
    }
}
