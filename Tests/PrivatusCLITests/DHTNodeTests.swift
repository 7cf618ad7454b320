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

    @Test func nodesJoinThroughABootstrapNodeAndFindABundleByPeerIDAlone() async throws {
        defer { scratch.remove() }
        let bob = try await ChatTests.User("bob", in: scratch, cli: cli)
        try bob.configure(["dhtExemptLoopback": true])
        try await bob.start()
        let bobStatus = try await bob.status()
        let entry = try #require(bobStatus.listenAddresses.first)
        var others: [ChatTests.User] = []
        for name in ["carol", "dave", "erin", "frank"] {
            let user = try await ChatTests.User(name, in: scratch, cli: cli)
            try user.configure(["dhtExemptLoopback": true, "bootstrap": [entry]])
            try await user.start()
            others.append(user)
        }
        let carol = others[0]
        let dave = others[1]
        // Dave's record is published once he has joined.
        for _ in 0..<200 {
            let status: DHTStatusView = try await dave.json(["dht", "status"])
            if status.published { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let daveStatus: DHTStatusView = try await dave.json(["dht", "status"])
        #expect(daveStatus.published && daveStatus.tableSize >= 1)
        let davePeer = try await dave.status().peerId
        #expect(daveStatus.nodeId.count == 64 && daveStatus.nodeId != davePeer, "a random ID, not the PeerID")

        // Carol knows only Dave's PeerID: the DHT gives her his bundle record and addresses.
        let found: DHTLookupView = try await carol.json(["dht", "lookup", davePeer])
        #expect(found.found && found.peerId == davePeer)
        let daveAddress = try #require(try await dave.status().listenAddresses.first)
        #expect(found.addresses.contains(daveAddress))
        // A PeerID nobody published: not found, exit 1; a malformed one: refused.
        let nobody = String(repeating: "ab", count: 32)
        let missing = try await carol.run(["dht", "lookup", nobody])
        #expect(missing.status == 1 && missing.stdout.contains("not found"))
        let malformed = try await carol.run(["dht", "lookup", "not-a-peer"])
        #expect(malformed.status != 0)

        // The records are kept by the network: Dave stops, Erin still finds his record.
        try await dave.stop()
        let afterStop: DHTLookupView = try await others[2].json(["dht", "lookup", davePeer])
        #expect(afterStop.found)
        for user in [bob, carol, others[2], others[3]] { try await user.stop() }
    }
}
