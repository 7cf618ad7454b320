import Foundation
import PrivatusNode
import PrivatusProfile
import PrivatusTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// No silent loss (issue 7): nodes SIGKILLed in the middle of a burst lose nothing they
/// accepted and show nothing twice.
@Suite(.serialized) struct CrashTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-crash")
    }

    typealias User = ChatTests.User

    /// Two contacts of each other, retrying every second.
    func pair() async throws -> (alice: User, bob: User, aliceID: String, bobID: String) {
        let alice = try await User("alice", in: scratch, cli: cli)
        let bob = try await User("bob", in: scratch, cli: cli)
        for user in [alice, bob] { try user.configure(["retryInitialSeconds": 1, "retryMaximumSeconds": 1]) }
        try await alice.start()
        try await bob.start()
        let aliceStatus = try await alice.status()
        let bobStatus = try await bob.status()
        _ = try await alice.json(
            ["contacts", "add", try #require(bobStatus.invite), "--name", "bob"], as: ContactView.self)
        _ = try await bob.json(
            ["contacts", "add", try #require(aliceStatus.invite), "--name", "alice"], as: ContactView.self)
        return (alice, bob, aliceStatus.peerId, bobStatus.peerId)
    }

    func send(_ text: String, to peer: String, through client: ControlClient) async throws -> String {
        try await client.call(
            "POST", "/api/v1/messages", body: SendRequest(peer: peer, text: text), as: SendResult.self
        )
        .id
    }

    /// Waits (at most ≈ 60 s) until every message with `peer` is delivered; returns them.
    func allDelivered(_ user: User, with peer: String, count: Int) async throws -> [MessageView] {
        var messages: [MessageView] = []
        for _ in 0..<600 {
            messages = try await user.json(["messages", peer, "--limit", "1000"])
            if messages.count == count, messages.allSatisfy({ $0.state == "delivered" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return messages
    }

    func kill(_ user: User) async throws {
        let node = try #require(user.node)
        node.child.send(SIGKILL)
        _ = try await node.wait(timeout: .seconds(30))
        user.node = nil
    }

    /// Sends `texts` from four concurrent clients (so the node commits them in groups); returns
    /// the ids.
    func sendConcurrently(_ texts: [String], to peer: String, through client: ControlClient) async throws -> Set<String>
    {
        try await withThrowingTaskGroup(of: [String].self) { group in
            for lane in 0..<4 {
                let mine = texts.enumerated().filter { $0.offset % 4 == lane }.map(\.element)
                group.addTask {
                    var ids: [String] = []
                    for text in mine { ids.append(try await send(text, to: peer, through: client)) }
                    return ids
                }
            }
            var all = Set<String>()
            for try await ids in group { all.formUnion(ids) }
            return all
        }
    }

    @Test func aReceiverKilledDuringABurstGetsEveryMessageOnceAndInOrder() async throws {
        defer { scratch.remove() }
        let (alice, bob, _, _) = try await pair()
        let client = try ControlClient(layout: alice.layout)
        var ids = try await sendConcurrently((1...30).map { "m\($0)" }, to: "bob", through: client)
        try await kill(bob)
        ids.formUnion(try await sendConcurrently((31...100).map { "m\($0)" }, to: "bob", through: client))
        #expect(ids.count == 100)
        try await bob.start()
        let sent = try await allDelivered(alice, with: "bob", count: 100)
        #expect(Set(sent.map(\.id)) == ids)
        #expect(
            sent.allSatisfy { $0.state == "delivered" },
            "\(sent.filter { $0.state != "delivered" }.count) not delivered")
        let received: [MessageView] = try await bob.json(["messages", "alice", "--limit", "1000"])
        #expect(received.map(\.id) == sent.map(\.id), "each once, in alice's sending order")
        #expect(Set(received.map(\.text)) == Set((1...100).map { "m\($0)" }))
        try await alice.stop()
        try await bob.stop()
    }

    @Test func aSenderKilledDuringABurstResendsWhatWasNotAcknowledgedWithoutDuplicates() async throws {
        defer { scratch.remove() }
        let (alice, bob, _, _) = try await pair()
        var client = try ControlClient(layout: alice.layout)
        var ids: [String] = []
        for index in 1...60 {
            ids.append(try await send("m\(index)", to: "bob", through: client))
            if index == 40 {
                // Killed right after accepting message 40: some of 1–40 are unacknowledged.
                try await kill(alice)
                try await alice.start()
                client = try ControlClient(layout: alice.layout)
            }
        }
        let sent = try await allDelivered(alice, with: "bob", count: 60)
        #expect(sent.map(\.id) == ids)
        #expect(
            sent.allSatisfy { $0.state == "delivered" },
            "\(sent.filter { $0.state != "delivered" }.count) not delivered")
        let received: [MessageView] = try await bob.json(["messages", "alice", "--limit", "1000"])
        #expect(received.map(\.text) == (1...60).map { "m\($0)" }, "each once, in sending order")
        try await alice.stop()
        try await bob.stop()
    }
}
