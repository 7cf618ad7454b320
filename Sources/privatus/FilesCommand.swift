import ArgumentParser
import Foundation
import PrivatusNode

/// `privatus files …`: files sent to and received from contacts (through the running node).
struct FilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files",
        abstract: "Send, list, accept, reject and cancel file transfers (through the running node).",
        subcommands: [Send.self, List.self, Accept.self, Reject.self, Cancel.self]
    )

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Offer a file to a contact; it is sent once the contact accepts.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "PeerID or contact name.") var peer: String
        @Argument(help: "The file.") var path: String
        @Flag(name: .long, help: "Print the transfer as JSON.") var json = false
        @Flag(name: .long, help: "Wait until the transfer ends, showing its progress on a terminal.")
        var follow = false

        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures {
                let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
                let client = try ControlClient(layout: global.layout)
                let transfer = try await client.call(
                    "POST", "/api/v1/files", body: SendFileRequest(peer: peer, path: absolute), as: FileView.self)
                if json { try Terminal.printJSON(transfer) } else { print(FilesCommand.line(for: transfer)) }
                if follow { try await FilesCommand.follow(transfer.id, client: client) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List transfers, oldest first.")
        @OptionGroup var global: GlobalOptions
        @Flag(
            name: .long,
            help: "Print an array of {id, peerId, direction, name, size, mediaType, state, bytesDone, …}.")
        var json = false

        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures {
                let transfers = try await ControlClient(layout: global.layout).call(
                    "GET", "/api/v1/files", as: [FileView].self)
                if json {
                    try Terminal.printJSON(transfers)
                } else {
                    for transfer in transfers { print(FilesCommand.line(for: transfer)) }
                }
            }
        }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept an offered file (it goes to the downloads folder, or --to DIR).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The transfer id.") var id: String
        @Option(name: .long, help: "The folder the finished file goes to.") var to: String?
        @Flag(name: .long, help: "Print the transfer as JSON.") var json = false
        @Flag(name: .long, help: "Wait until the transfer ends, showing its progress on a terminal.")
        var follow = false

        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures {
                let folder = to.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
                let client = try ControlClient(layout: global.layout)
                let transfer = try await client.call(
                    "POST", "/api/v1/files/\(id)/accept", body: AcceptFileRequest(to: folder), as: FileView.self)
                if json { try Terminal.printJSON(transfer) } else { print(FilesCommand.line(for: transfer)) }
                if follow { try await FilesCommand.follow(transfer.id, client: client) }
            }
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decline an offered file.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The transfer id.") var id: String
        @Flag(name: .long, help: "Print the transfer as JSON.") var json = false
        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures { try await FilesCommand.act(global, id, "reject", json: json) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a transfer in either direction.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The transfer id.") var id: String
        @Flag(name: .long, help: "Print the transfer as JSON.") var json = false
        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures { try await FilesCommand.act(global, id, "cancel", json: json) }
        }
    }

    static func act(_ global: GlobalOptions, _ id: String, _ action: String, json: Bool) async throws {
        let transfer = try await ControlClient(layout: global.layout).call(
            "POST", "/api/v1/files/\(id)/\(action)", as: FileView.self)
        if json { try Terminal.printJSON(transfer) } else { print(line(for: transfer)) }
    }

    static func line(for transfer: FileView) -> String {
        var line =
            "\(transfer.id)  \(transfer.direction)  \(Terminal.printable(transfer.name))  "
            + "\(transfer.bytesDone)/\(transfer.size) bytes  \(transfer.state)"
        if let reason = transfer.reason { line += "  (\(Terminal.printable(reason)))" }
        if let path = transfer.path, transfer.direction == "received" { line += "  \(Terminal.printable(path))" }
        return line
    }

    /// Follows a transfer until it ends (polling the node 4 times a second): a progress bar with
    /// rate and ETA when stderr is a terminal; then the final state. Exit 1 unless complete.
    static func follow(_ id: String, client: ControlClient) async throws {
        let terminal = isatty(STDERR_FILENO) == 1
        let started = ContinuousClock.now
        var firstBytes: UInt64?
        while true {
            let transfers = try await client.call("GET", "/api/v1/files", as: [FileView].self)
            guard let transfer = transfers.first(where: { $0.id == id }) else { throw ExitCode(1) }
            if ["complete", "failed", "cancelled", "rejected"].contains(transfer.state) {
                if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
                print(line(for: transfer))
                if transfer.state != "complete" { throw ExitCode(1) }
                return
            }
            if terminal, transfer.size > 0 {
                let start = firstBytes ?? transfer.bytesDone
                firstBytes = start
                let seconds = max((ContinuousClock.now - started).seconds, 0.001)
                let rate = Double(transfer.bytesDone - min(start, transfer.bytesDone)) / seconds
                let left = Double(transfer.size - min(transfer.bytesDone, transfer.size))
                let eta = rate > 0 ? String(format: "%.0fs", left / rate) : "?"
                let fraction = Double(transfer.bytesDone) / Double(transfer.size)
                let filled = Int(30 * fraction)
                let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled)
                let text = String(format: "\r[%@] %3.0f%%  %.1f MB/s  ETA %@ ", bar, 100 * fraction, rate / 1e6, eta)
                FileHandle.standardError.write(Data(text.utf8))
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
