import ArgumentParser
import Foundation
import PrivatusNode

/// `privatus contacts …`: the running node's contacts and message requests.
struct ContactsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contacts",
        abstract: "Manage contacts and message requests (through the running node).",
        subcommands: [Add.self, List.self, Requests.self, Accept.self, Block.self, Remove.self, Verify.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a contact from an invite (privatus://<peerid>?a=host:port…) or a PeerID.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The invite or PeerID.") var invite: String
        @Option(name: .long, help: "The name to show for the contact.") var name: String?
        @Flag(name: .long, help: "Print {peerId, name, verified} as JSON.") var json = false

        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures {
                let contact = try await ControlClient(layout: global.layout).call(
                    "POST", "/api/v1/contacts", body: AddContactRequest(invite: invite, name: name),
                    as: ContactView.self)
                try show([contact], json: json, single: true)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List contacts.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print an array of {peerId, name, verified, lastSeen}.") var json = false

        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures {
                let contacts = try await ControlClient(layout: global.layout).call(
                    "GET", "/api/v1/contacts", as: [ContactView].self)
                try show(contacts, json: json, single: false)
            }
        }
    }

    struct Requests: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List message requests: senders who are not contacts.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print an array of {peerId, name, verified, lastSeen, possibleImpersonation}.")
        var json = false

        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures {
                let requests = try await ControlClient(layout: global.layout).call(
                    "GET", "/api/v1/contacts/requests", as: [ContactView].self)
                try show(requests, json: json, single: false)
            }
        }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept a message request as a contact.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "PeerID or contact name.") var peer: String
        @Flag(name: .long) var json = false
        func run() async throws { try await act(global, peer, "accept", json: json) }
    }

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Block a peer: its messages are dropped unanswered.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "PeerID or contact name.") var peer: String
        @Flag(name: .long) var json = false
        func run() async throws { try await act(global, peer, "block", json: json) }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a contact (the conversation stays; new messages arrive as requests).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "PeerID or contact name.") var peer: String
        @Flag(name: .long) var json = false
        func run() async throws { try await act(global, peer, "remove", json: json) }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mark a contact verified when the safety number you compared matches.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "PeerID or contact name.") var peer: String
        @Argument(help: "The 60-digit safety number (spaces allowed).") var safetyNumber: [String]
        @Flag(name: .long) var json = false

        func run() async throws {
            _ = global.bootstrapLogging()
            try await reportingFailures {
                let contact = try await ControlClient(layout: global.layout).call(
                    "POST", "/api/v1/contacts/\(ControlClient.escape(peer))/verify",
                    body: VerifyRequest(safetyNumber: safetyNumber.joined()), as: ContactView.self)
                try show([contact], json: json, single: true)
            }
        }
    }
}

extension AsyncParsableCommand {
    /// `accept`, `block`, `remove`: one POST, the contact as it is now.
    fileprivate func act(_ global: GlobalOptions, _ peer: String, _ action: String, json: Bool) async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let contact = try await ControlClient(layout: global.layout).call(
                "POST", "/api/v1/contacts/\(ControlClient.escape(peer))/\(action)", as: ContactView.self)
            try show([contact], json: json, single: true)
        }
    }
}

private func show(_ contacts: [ContactView], json: Bool, single: Bool) throws {
    if json {
        if single, let contact = contacts.first {
            try Terminal.printJSON(contact)
        } else {
            try Terminal.printJSON(contacts)
        }
        return
    }
    for contact in contacts {
        var line = "\(Terminal.printable(contact.name))  \(contact.peerId)  \(contact.state)"
        if contact.verified { line += "  verified" }
        if contact.possibleImpersonation == true { line += "  POSSIBLE IMPERSONATION: same name as a contact" }
        print(line)
        if let number = contact.safetyNumber, single { print("  safety number: \(number)") }
    }
}

/// `privatus send <peer> <text>`: queue a message and return at once.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send a message to a contact (queued; delivered in the background).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "PeerID or contact name.") var peer: String
    @Argument(help: "The text.") var text: String
    @Flag(name: .long, help: "Print {id, state}.") var json = false

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let result = try await ControlClient(layout: global.layout).call(
                "POST", "/api/v1/messages", body: SendRequest(peer: peer, text: text), as: SendResult.self)
            if json { try Terminal.printJSON(result) } else { print("\(result.id) \(result.state)") }
        }
    }
}

/// `privatus retry <message-id>`: requeue a failed message.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Queue a failed message again (delivered when its contact is reachable).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The message id (32 hex digits, from `messages`).") var id: String
    @Flag(name: .long, help: "Print {id, state}.") var json = false

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let result = try await ControlClient(layout: global.layout).call(
                "POST", "/api/v1/messages/\(ControlClient.escape(id))/retry", as: SendResult.self)
            if json { try Terminal.printJSON(result) } else { print("\(result.id) \(result.state)") }
        }
    }
}

/// `privatus messages <peer>`: a conversation, oldest to newest.
struct MessagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "messages", abstract: "Show the latest messages with a contact, oldest first.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "PeerID or contact name.") var peer: String
    @Option(name: .long, help: "How many of the latest messages (1 to 1000).") var limit = 50
    @Option(name: .long, help: "Only messages before this message id.") var before: String?
    @Flag(name: .long, help: "Mark the peer's messages read first (sends read receipts unless turned off).")
    var markRead = false
    @Flag(name: .long, help: "Print an array of {id, from, text, sentAt, state}.") var json = false

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            if markRead {
                _ = try await ControlClient(layout: global.layout).call(
                    "POST", "/api/v1/messages/read", body: MarkReadRequest(peer: peer), as: MarkReadResult.self)
            }
            var path = "/api/v1/messages?peer=\(ControlClient.escape(peer))&limit=\(limit)"
            if let before { path += "&before=\(ControlClient.escape(before))" }
            let messages = try await ControlClient(layout: global.layout).call("GET", path, as: [MessageView].self)
            if json {
                try Terminal.printJSON(messages)
                return
            }
            for message in messages {
                let when = Date(timeIntervalSince1970: Double(message.sentAt) / 1000)
                print(
                    "\(when.formatted(.iso8601))  \(message.from.prefix(8))  [\(message.state)]  "
                        + Terminal.printable(message.text))
            }
        }
    }
}

/// `privatus watch`: the node's events as they happen, until the node stops or Ctrl-C.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Stream the running node's events (messages received, state changes, requests).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "One JSON object per line, each with a \"type\" (the first is \"watching\").")
    var json = false

    func run() async throws {
        _ = global.bootstrapLogging()
        try await reportingFailures {
            let json = self.json
            try await ControlClient(layout: global.layout).stream("/api/v1/events") { line in
                // Written at once, line by line: a script reading the pipe sees each event as it
                // happens.
                if json {
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                } else if let event = try? JSONDecoder().decode(NodeEvent.self, from: Data(line.utf8)) {
                    FileHandle.standardOutput.write(Data((Self.describe(event) + "\n").utf8))
                }
            }
            FileHandle.standardError.write(Data("privatus: the node stopped\n".utf8))
        }
    }

    static func describe(_ event: NodeEvent) -> String {
        let peer = event.peerId.map { String($0.prefix(8)) } ?? "?"
        switch event.type {
        case "watching": return "watching for events (Ctrl-C to stop)"
        case "message": return "message from \(peer): \(Terminal.printable(event.text ?? ""))"
        case "state": return "message \(event.id ?? "?") to \(peer): \(event.state ?? "?")"
        case "request": return "message request from \(Terminal.printable(event.name ?? "?")) (\(peer))"
        case "file":
            let done = event.bytes.map { "\($0)" } ?? "?"
            let size = event.size.map { "\($0)" } ?? "?"
            return "file \(event.id ?? "?") \(Terminal.printable(event.name ?? "?")) with \(peer): "
                + "\(event.state ?? "?") \(done)/\(size) bytes"
        case "dropped":
            return "(\(event.count.map { "\($0)" } ?? "some") events missed: this watch fell behind; "
                + "`privatus messages` and `privatus files` show the current state)"
        default: return event.type
        }
    }
}
