import Foundation
import PrivatusCore
import PrivatusNode

#if canImport(Glibc)
import Glibc
#endif

/// `privatus demo`: three real nodes on loopback (alice, bob, carol), on temporary profiles,
/// used as people would — invites, a first message that starts the end-to-end session, message
/// requests accepted, safety numbers compared, a message sent while bob's node is stopped and
/// delivered when it comes back on a new port — narrated on stdout, ending with each
/// conversation's messages, their final states and how long each took to be delivered.
/// Everything it creates is removed at the end.
public struct Demo: Sendable {
    public let executable: String
    let say: @Sendable (String) -> Void

    public init(executable: String, say: @escaping @Sendable (String) -> Void) {
        self.executable = executable
        self.say = say
    }

    /// A message sent in the demo and how long it took to be delivered.
    struct Sent {
        var id: String
        var deliveredAfterMs: Double?
    }

    public func run() async throws {
        let scratch = try LocalNodeDirectory(executable: executable, prefix: "privatus-demo")
        defer { scratch.remove() }
        say("Three nodes on this machine, each with its own temporary profile (a cheap password cost: demo only).")
        let alice = try scratch.start("alice")
        defer { alice.stop() }
        var bob = try scratch.start("bob")
        defer { bob.stop() }
        let carol = try scratch.start("carol")
        defer { carol.stop() }
        var ids: [String: String] = [:]
        var invites: [String: String] = [:]
        for (name, node) in [("alice", alice), ("bob", bob), ("carol", carol)] {
            let status = try await node.status()
            ids[name] = status.peerId
            invites[name] = status.invite
            say("\(name): \(status.peerId.prefix(16))… listening on \(status.listenAddresses.joined(separator: ", "))")
        }
        var timings: [String: Double] = [:]

        let bobInvite = try require(invites["bob"], "bob's invite")
        say("\nbob gives alice his invite: \(bobInvite)")
        let added = ContinuousClock.now
        try await alice.addContact(bobInvite, name: "bob")
        let first = try await alice.send("Hi Bob! Only your node can read this.", to: "bob")
        timings[first] = try await waitDelivered(first, at: alice, peer: "bob", since: added)
        say(
            "alice → bob: delivered \(Self.ms(timings[first])) after adding him (bundle fetched over the link, "
                + "PQXDH, the first Double Ratchet message, bob's commit and receipt)")

        let request = try require(
            try await bob.client.call("GET", "/api/v1/contacts/requests", as: [ContactView].self).first,
            "alice's message request")
        say("\nbob sees a message request from \"\(request.name)\" (\(request.peerId.prefix(16))…) and accepts it")
        _ = try await bob.client.call("POST", "/api/v1/contacts/\(request.peerId)/accept", as: ContactView.self)
        try await timed(&timings, "Hello Alice, got it.", from: bob, to: "alice", label: "bob → alice")

        let aliceSide = try await alice.client.call("GET", "/api/v1/contacts", as: [ContactView].self)
        let bobSide = try await bob.client.call("GET", "/api/v1/contacts", as: [ContactView].self)
        let number = try require(aliceSide.first?.safetyNumber, "the safety number")
        say("\nsafety number on alice's screen: \(Self.grouped(number))")
        say("safety number on bob's screen:   \(Self.grouped(bobSide.first?.safetyNumber ?? ""))")
        _ = try await alice.client.call(
            "POST", "/api/v1/contacts/bob/verify", body: VerifyRequest(safetyNumber: number), as: ContactView.self)
        say("they match: alice marks bob verified")

        say("\ncarol adds alice and bob from their invites; they accept her")
        try await carol.addContact(try require(invites["alice"], "alice's invite"), name: "alice")
        try await carol.addContact(bobInvite, name: "bob")
        try await timed(&timings, "Hi both, carol here.", from: carol, to: "alice", label: "carol → alice")
        try await timed(&timings, "Hi both, carol here.", from: carol, to: "bob", label: "carol → bob")
        for node in [alice, bob] {
            _ = try await node.client.call(
                "POST", "/api/v1/contacts/\(try require(ids["carol"], "carol's id"))/accept", as: ContactView.self)
        }
        try await alice.addContact(try require(invites["carol"], "carol's invite"), name: "carol")

        say("\nbob's node stops")
        bob.stop()
        let whileAway = try await alice.send("Bob, are you there? (sent while your node is off)", to: "bob")
        let awayStarted = ContinuousClock.now
        try await timed(&timings, "Welcome, carol!", from: alice, to: "carol", label: "alice → carol")
        let state = try await state(of: whileAway, at: alice, peer: "bob")
        say("alice → bob while bob is away: \(state) (kept in alice's outbox, retried)")
        try bob.startAgain()
        let comeback = ContinuousClock.now
        let newAddress = try await bob.status().listenAddresses.first ?? ""
        say("bob's node starts again, now on \(newAddress); it dials its contacts, whose nodes learn the new address")
        _ = try await waitDelivered(whileAway, at: alice, peer: "bob", since: comeback)
        timings[whileAway] = (ContinuousClock.now - awayStarted).milliseconds
        say("alice → bob: delivered \(Self.ms((ContinuousClock.now - comeback).milliseconds)) after bob came back")

        for (owner, node, peer) in [("alice", alice, "bob"), ("alice", alice, "carol"), ("bob", bob, "carol")] {
            say("\n\(owner)'s conversation with \(peer):")
            for message in try await node.client.call(
                "GET", "/api/v1/messages?peer=\(peer)", as: [MessageView].self)
            {
                let who = ids.first { $0.value == message.from }?.key ?? "?"
                let timing = timings[message.id].map { ", delivered in \(Self.ms($0))" } ?? ""
                say("  [\(message.state)\(timing)] \(who): \(message.text)")
            }
        }
        say("\nDone: the three nodes stop and their temporary profiles are deleted.")
    }

    /// Sends and waits for the receipt, noting how long it took.
    func timed(
        _ timings: inout [String: Double], _ text: String, from node: LocalNode, to peer: String, label: String
    ) async throws {
        let started = ContinuousClock.now
        let id = try await node.send(text, to: peer)
        timings[id] = try await waitDelivered(id, at: node, peer: peer, since: started)
        say("\(label): delivered in \(Self.ms(timings[id]))")
    }

    func state(of id: String, at node: LocalNode, peer: String) async throws -> String {
        let messages = try await node.client.call(
            "GET", "/api/v1/messages?peer=\(ControlClient.escape(peer))&limit=50", as: [MessageView].self)
        return messages.first { $0.id == id }?.state ?? "?"
    }

    /// Polls the sender's API until the message is delivered (at most 30 s); returns the
    /// milliseconds since `since`.
    func waitDelivered(
        _ id: String, at node: LocalNode, peer: String, since: ContinuousClock.Instant
    ) async throws
        -> Double
    {
        for _ in 0..<3_000 {
            if try await state(of: id, at: node, peer: peer) == "delivered" {
                return (ContinuousClock.now - since).milliseconds
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw LocalNodeError.failed("delivering a message within 30 s")
    }

    func require<T>(_ value: T?, _ what: String) throws -> T {
        guard let value else { throw LocalNodeError.failed("getting \(what)") }
        return value
    }

    static func ms(_ value: Double?) -> String {
        guard let value else { return "?" }
        return value < 10 ? String(format: "%.1f ms", value) : "\(Int(value.rounded())) ms"
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
