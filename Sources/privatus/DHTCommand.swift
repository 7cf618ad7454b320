import ArgumentParser
import Foundation
import PrivatusNode

/// `privatus dht status|lookup`: the running node's DHT endpoint.
struct DHTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dht", abstract: "The node's DHT: its endpoint, and lookups by PeerID.",
        subcommands: [DHTStatusCommand.self, DHTLookupCommand.self])
}

struct DHTStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the DHT endpoint: node ID, address, table size, records kept.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print {nodeId, address, tableSize, records, published, presencePublished}.") var json =
        false

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let view = try await ControlClient(layout: global.layout).call("GET", "/api/v1/dht", as: DHTStatusView.self)
            if json {
                try Terminal.printJSON(view)
            } else {
                print("node id:    \(view.nodeId)")
                print("address:    \(view.address)")
                print("table:      \(view.tableSize) nodes")
                print("records:    \(view.records)")
                print("published:  \(view.published ? "yes" : "not yet")")
                print("presence:   \(view.presencePublished ? "published" : "not yet")")
            }
        }
    }
}

struct DHTLookupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup", abstract: "Find a PeerID's bundle record through the DHT (exit 1 when not found).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The PeerID (64 hex digits).") var peer: String
    @Flag(name: .long, help: "Print {peerId, found, sequence, addresses, requests, hops, ms}.") var json = false

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let view = try await ControlClient(layout: global.layout).call(
                "GET", "/api/v1/dht/lookup/\(ControlClient.escape(peer))", as: DHTLookupView.self)
            if json {
                try Terminal.printJSON(view)
            } else if view.found {
                print(
                    "found \(view.peerId) (record \(view.sequence)) in \(view.hops) hops, "
                        + "\(view.requests) requests, \(String(format: "%.1f", view.ms)) ms")
                for address in view.addresses { print("  \(Terminal.printable(address))") }
            } else {
                print("not found (\(view.hops) hops, \(view.requests) requests, \(String(format: "%.1f", view.ms)) ms)")
            }
            if !view.found { throw CLIFailure(status: 1, message: "no bundle record found for that PeerID") }
        }
    }
}
