import Foundation
import PrivatusNode
import PrivatusTesting
import Testing

/// Real `privatus run` processes joining the DHT on loopback and finding each other's bundle
/// records by PeerID alone.
@Suite(.serialized) struct DHTNodeTests {
    let cli: CLIProcess
    let scratch: TemporaryDirectory

    init() throws {
        cli = try CLIProcess()
        scratch = try TemporaryDirectory("privatus-dht")
    }

    /// Twenty nodes on loopback: Carol reaches Dave knowing only his PeerID; a node restarted
    /// without a bootstrap node rejoins through the nodes it saw last; records outlive their
    /// publisher's node.
    @Test func twentyNodesLetCarolReachDaveByPeerIDAloneAndARestartedNodeRejoinsWithoutABootstrapNode()
        async throws
    {
        defer { scratch.remove() }
        let bob = try await ChatTests.User("bob", in: scratch, cli: cli)
        try bob.configure(["dhtExemptLoopback": true])
        try await bob.start()
        let bobStatus = try await bob.status()
        let entry = try #require(bobStatus.listenAddresses.first)
        func joined(_ name: String) async throws -> ChatTests.User {
            let user = try await ChatTests.User(name, in: scratch, cli: cli)
            try user.configure(["dhtExemptLoopback": true, "bootstrap": [entry]])
            try await user.start()
            return user
        }
        let named = ["carol", "dave", "erin", "frank"]
        var others: [ChatTests.User] = []
        for name in named { others.append(try await joined(name)) }
        let carol = others[0]
        let dave = others[1]
        let erin = others[2]
        // Fifteen more, started a few at a time: twenty nodes with Bob.
        for batch in stride(from: 0, to: 15, by: 5) {
            try await withThrowingTaskGroup(of: ChatTests.User.self) { group in
                for index in batch..<batch + 5 { group.addTask { try await joined("node\(index)") } }
                for try await user in group { others.append(user) }
            }
        }
        #expect(others.count + 1 == 20)

        // Dave's record is published once he has joined.
        for _ in 0..<200 {
            let status: DHTStatusView = try await dave.json(["dht", "status"])
            if status.published { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let daveStatus: DHTStatusView = try await dave.json(["dht", "status"])
        #expect(daveStatus.published && daveStatus.tableSize >= 1)
        let davePeer = try await dave.status().peerId
        let carolPeer = try await carol.status().peerId
        #expect(daveStatus.nodeId.count == 64 && daveStatus.nodeId != davePeer, "a random ID, not the PeerID")

        // Carol knows only Dave's PeerID: the DHT gives her his bundle record and addresses.
        let found: DHTLookupView = try await carol.json(["dht", "lookup", davePeer])
        #expect(found.found && found.peerId == davePeer)
        #expect(found.hops >= 1 && found.requests >= found.hops, "at least one round of requests")
        let daveAddress = try #require(try await dave.status().listenAddresses.first)
        #expect(found.addresses.contains(daveAddress))
        // A PeerID nobody published: not found, exit 1; a malformed one: refused.
        let nobody = String(repeating: "ab", count: 32)
        let missing = try await carol.run(["dht", "lookup", nobody])
        #expect(missing.status == 1 && missing.stdout.contains("not found"))
        let malformed = try await carol.run(["dht", "lookup", "not-a-peer"])
        #expect(malformed.status != 0)

        // She adds him by PeerID alone and writes: the node finds where he is through the DHT,
        // and Dave sees her message as a request.
        let added: ContactView = try await carol.json(["contacts", "add", davePeer, "--name", "dave"])
        #expect(added.peerId == davePeer && added.addresses.isEmpty)
        _ = try await carol.json(["send", "dave", "found you by your PeerID"], as: SendResult.self)
        let carolView = try await carol.messages(with: "dave") { $0.last?.state == "delivered" }
        #expect(carolView.map(\.state) == ["delivered"])
        let daveView = try await dave.messages(with: carolPeer) { !$0.isEmpty }
        #expect(daveView.map(\.text) == ["found you by your PeerID"])
        let requests: [ContactView] = try await dave.json(["contacts", "requests"])
        #expect(requests.map(\.peerId) == [carolPeer])

        // Erin restarts without a bootstrap node while Bob, the only one she was told of, is
        // away: she rejoins through the nodes she saw last and still finds Dave's record.
        try await erin.stop()
        try await bob.stop()
        try erin.configure(["bootstrap": [String]()])
        try await erin.start()
        var rejoined = false
        for _ in 0..<100 {
            let status: DHTStatusView = try await erin.json(["dht", "status"])
            if status.tableSize > 0 {
                rejoined = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(rejoined, "a table filled from the saved nodes")
        let afterRestart: DHTLookupView = try await erin.json(["dht", "lookup", davePeer])
        #expect(afterRestart.found && afterRestart.addresses.contains(daveAddress))

        // The records are kept by the network: Dave stops, Frank still finds his record.
        try await dave.stop()
        let afterStop: DHTLookupView = try await others[3].json(["dht", "lookup", davePeer])
        #expect(afterStop.found)
        for user in others where user !== dave { try await user.stop() }
    }

    /// Bob is not discoverable (his bundle record names no address) and moves to a new port
    /// while Alice is away; she finds him again through his presence record, which only she, his
    /// contact, can find and read.
    @Test func bobChangesPortAndAliceFindsHimThroughHisPresenceRecord() async throws {
        defer { scratch.remove() }
        let seed = try await ChatTests.User("seed", in: scratch, cli: cli)
        try seed.configure(["dhtExemptLoopback": true])
        try await seed.start()
        let entry = try #require(try await seed.status().listenAddresses.first)
        func joined(_ name: String, _ settings: [String: Any] = [:]) async throws -> ChatTests.User {
            let user = try await ChatTests.User(name, in: scratch, cli: cli)
            try user.configure(settings.merging(["dhtExemptLoopback": true, "bootstrap": [entry]]) { $1 })
            try await user.start()
            return user
        }
        var helpers: [ChatTests.User] = [seed]
        for index in 0..<4 { helpers.append(try await joined("helper\(index)")) }
        let alice = try await joined("alice")
        let bob = try await joined("bob", ["discoverable": false])
        let bobStatus = try await bob.status()
        let aliceID = try await alice.status().peerId

        // They become contacts: Alice adds Bob's invite and writes, Bob accepts (his hello, with
        // his presence secret, goes to her then) and answers.
        _ = try await alice.json(
            ["contacts", "add", try #require(bobStatus.invite), "--name", "bob"], as: ContactView.self)
        _ = try await alice.json(["send", "bob", "before the move"], as: SendResult.self)
        // Delivered first: until her message arrives, Bob does not know her at all.
        let sent = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        #expect(sent.map(\.state) == ["delivered"])
        _ = try await bob.json(["contacts", "accept", aliceID], as: ContactView.self)
        _ = try await bob.json(["send", aliceID, "see you"], as: SendResult.self)
        let before = try await alice.messages(with: "bob") { $0.count == 2 }
        #expect(before.map(\.text) == ["before the move", "see you"])

        // Alice stops; Bob restarts on a new port and publishes his presence there.
        try await alice.stop()
        try await bob.stop()
        try await bob.start()
        let moved = try #require(try await bob.status().listenAddresses.first)
        #expect(moved != bobStatus.listenAddresses.first)
        // Lookups wait out the nodes that left (Alice, Bob's old address) before they end.
        for _ in 0..<600 {
            let status: DHTStatusView = try await bob.json(["dht", "status"])
            if status.presencePublished { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let status: DHTStatusView = try await bob.json(["dht", "status"])
        #expect(status.presencePublished)

        // Alice comes back: Bob's old address is dead and his bundle record names none, but his
        // presence record does.
        try await alice.start()
        // Her node joins in the background: looked up once its table has nodes.
        for _ in 0..<200 {
            let status: DHTStatusView = try await alice.json(["dht", "status"])
            if status.tableSize > 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let bundle: DHTLookupView = try await alice.json(["dht", "lookup", bobStatus.peerId])
        #expect(bundle.found && bundle.addresses.isEmpty, "not discoverable: no address in the bundle record")
        _ = try await alice.json(["send", "bob", "after the move"], as: SendResult.self)
        let after = try await alice.messages(with: "bob") { $0.last?.state == "delivered" }
        #expect(after.map(\.text) == ["before the move", "see you", "after the move"])
        #expect(after.last?.state == "delivered")
        let bobView = try await bob.messages(with: aliceID) { $0.count == 3 }
        #expect(bobView.map(\.text) == ["before the move", "see you", "after the move"])
        let contacts: [ContactView] = try await alice.json(["contacts", "list"])
        #expect(contacts.first?.addresses.first == moved, "his new address, from his hello")

        for user in helpers + [alice, bob] { try await user.stop() }
    }
}
