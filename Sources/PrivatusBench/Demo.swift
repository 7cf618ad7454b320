import Foundation
import PrivatusCore
import PrivatusNode

#if canImport(Glibc)
import Glibc
#endif

/// `privatus demo`: two real nodes on loopback, on temporary profiles, chatting as two users
/// would — an invite, a first message that starts the end-to-end session, a message request
/// accepted, safety numbers compared, one node restarting on a new port — narrated on stdout.
/// Everything it creates is removed at the end.
public struct Demo: Sendable {
    public let executable: String
    let say: @Sendable (String) -> Void

    public init(executable: String, say: @escaping @Sendable (String) -> Void) {
        self.executable = executable
        self.say = say
    }

    public func run() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("privatus-demo-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        say("Two nodes on this machine, each with its own temporary profile (a cheap password cost: demo only).")
        var alice = try LocalNode.start(
            executable: executable, profile: scratch.appendingPathComponent("alice").path, home: scratch.path,
            name: "alice")
        defer { alice.stop() }
        var bob = try LocalNode.start(
            executable: executable, profile: scratch.appendingPathComponent("bob").path, home: scratch.path,
            name: "bob")
        defer { bob.stop() }
        let aliceStatus = try await alice.status()
        let bobStatus = try await bob.status()
        say(
            "alice: \(aliceStatus.peerId.prefix(16))… listening on \(aliceStatus.listenAddresses.joined(separator: ", "))"
        )
        say("bob:   \(bobStatus.peerId.prefix(16))… listening on \(bobStatus.listenAddresses.joined(separator: ", "))")
        let invite = try require(bobStatus.invite, "bob's invite")
        say("\nbob gives alice his invite: \(invite)")

        let started = ContinuousClock.now
        _ = try await alice.client.call(
            "POST", "/api/v1/contacts", body: AddContactRequest(invite: invite, name: "bob"), as: ContactView.self)
        let first = try await send("Hi Bob! Only your node can read this.", from: alice, to: "bob")
        try await waitDelivered(first, at: alice, peer: "bob")
        say(
            "alice → bob: delivered \(Int((ContinuousClock.now - started).milliseconds)) ms after adding him "
                + "(bundle fetched over the link, PQXDH, first Double Ratchet message, bob's receipt)")

        let requests = try await bob.client.call("GET", "/api/v1/contacts/requests", as: [ContactView].self)
        let request = try require(requests.first, "alice's message request")
        say("\nbob sees a message request from \"\(request.name)\" (\(request.peerId.prefix(16))…) and accepts it")
        _ = try await bob.client.call(
            "POST", "/api/v1/contacts/\(request.peerId)/accept", as: ContactView.self)
        let reply = try await send("Hello Alice, got it.", from: bob, to: request.peerId)
        try await waitDelivered(reply, at: bob, peer: request.peerId)
        say("bob → alice: delivered")

        let aliceSide = try await alice.client.call("GET", "/api/v1/contacts", as: [ContactView].self)
        let bobSide = try await bob.client.call("GET", "/api/v1/contacts", as: [ContactView].self)
        let number = try require(aliceSide.first?.safetyNumber, "the safety number")
        say("\nsafety number on alice's screen: \(Self.grouped(number))")
        say("safety number on bob's screen:   \(Self.grouped(bobSide.first?.safetyNumber ?? ""))")
        _ = try await alice.client.call(
            "POST", "/api/v1/contacts/bob/verify", body: VerifyRequest(safetyNumber: number), as: ContactView.self)
        say("they match: alice marks bob verified")

        let oldAddress = bobStatus.listenAddresses.first ?? ""
        try bob.restart()
        let newAddress = try await bob.status().listenAddresses.first ?? ""
        say("\nbob's node restarts and now listens on \(newAddress) (was \(oldAddress)); it tells alice's node")
        let later = try await send("Still there after your restart?", from: alice, to: "bob")
        try await waitDelivered(later, at: alice, peer: "bob")
        say("alice → bob: delivered to the new address")

        say("\nalice's conversation with bob:")
        for message in try await alice.client.call(
            "GET", "/api/v1/messages?peer=bob", as: [MessageView].self)
        {
            let who = message.from == aliceStatus.peerId ? "alice" : "bob"
            say("  [\(message.state)] \(who): \(message.text)")
        }
        say("\nDone: both nodes stop and their temporary profiles are deleted.")
    }

    func send(_ text: String, from node: LocalNode, to peer: String) async throws -> String {
        try await node.client.call(
            "POST", "/api/v1/messages", body: SendRequest(peer: peer, text: text), as: SendResult.self
        ).id
    }

    /// Polls the sender's API until the message is delivered (at most 30 s).
    func waitDelivered(_ id: String, at node: LocalNode, peer: String) async throws {
        for _ in 0..<3_000 {
            let messages = try await node.client.call(
                "GET", "/api/v1/messages?peer=\(ControlClient.escape(peer))&limit=20", as: [MessageView].self)
            if messages.first(where: { $0.id == id })?.state == "delivered" { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw LocalNodeError.failed("delivering a message within 30 s")
    }

    func require<T>(_ value: T?, _ what: String) throws -> T {
        guard let value else { throw LocalNodeError.failed("getting \(what)") }
        return value
    }

    static func grouped(_ digits: String) -> String {
        var groups: [String] = []
        var rest = Substring(digits)
        while !rest.isEmpty {
            groups.append(String(rest.prefix(5)))
            rest = rest.dropFirst(5)
        }
        return groups.joined(separator: " ")
    }
}
