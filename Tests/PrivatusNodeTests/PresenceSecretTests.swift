import Foundation
import Logging
import PrivatusCore
import PrivatusCrypto
import PrivatusDHT
import PrivatusStore
import PrivatusTesting
import PrivatusWire
import Testing

@testable import PrivatusNet
@testable import PrivatusNode

/// The node's presence secret: kept across restarts, renewed when a contact leaves.
@Suite struct PresenceSecretTests {
    let scratch: TemporaryDirectory
    let keys = IdentityKeys()

    init() throws {
        scratch = try TemporaryDirectory("privatus-presence")
    }

    func messenger() throws -> Messenger {
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: keys.databaseKey)
        return try Messenger(store: store, keys: keys, name: "alice", logger: Logger(label: "test"))
    }

    @Test func theSecretSurvivesARestartAndIsRenewedWhenAContactIsRemovedOrBlocked() async throws {
        defer { scratch.remove() }
        let first = try await messenger().presenceSecret()
        let again = try await messenger().presenceSecret()
        #expect(again == first, "read back from the database, not drawn again")

        let messenger = try messenger()
        let bob = IdentityKey().publicKey.peerID
        let carol = IdentityKey().publicKey.peerID
        _ = try await messenger.addContact(Invite(peerID: bob, addresses: []), name: "bob")
        _ = try await messenger.addContact(Invite(peerID: carol, addresses: []), name: "carol")
        // Adding contacts changes nothing; removing one draws a new secret, which is kept.
        #expect(try await messenger.presenceSecret() == first)
        _ = try await messenger.remove("bob")
        let afterRemoval = try await messenger.presenceSecret()
        #expect(afterRemoval != first)
        #expect(try await self.messenger().presenceSecret() == afterRemoval)
        // Blocking a contact draws another.
        _ = try await messenger.setState(.blocked, of: "carol")
        let afterBlocking = try await messenger.presenceSecret()
        #expect(afterBlocking != afterRemoval && afterBlocking != first)
    }

    @Test func aHelloKeepsAContactsSecretButNotAWrongLengthOneNorABlockedPeersNext() async throws {
        defer { scratch.remove() }
        let messenger = try messenger()
        let bobKey = IdentityKey()
        let bob = LinkPeer(peerID: bobKey.publicKey.peerID, identity: bobKey.publicKey, handshakeHash: Data())
        _ = try await messenger.addContact(Invite(peerID: bob.peerID, addresses: []), name: "bob")
        var hello = Hello(listenAddresses: ["198.51.100.7:4000"])
        hello.presenceSecret = Data(repeating: 7, count: 31)
        try await messenger.receiveHello(hello, from: bob)
        #expect(try await messenger.store.contact(bob.peerID)?.presenceSecret == [], "31 bytes: not a secret")
        #expect(try await messenger.store.contact(bob.peerID)?.addresses == ["198.51.100.7:4000"])
        hello.presenceSecret = Data(repeating: 7, count: 32)
        try await messenger.receiveHello(hello, from: bob)
        #expect(try await messenger.store.contact(bob.peerID)?.presenceSecret == [UInt8](repeating: 7, count: 32))
        // Once blocked, what the peer says is not kept.
        _ = try await messenger.setState(.blocked, of: "bob")
        hello.presenceSecret = Data(repeating: 8, count: 32)
        hello.listenAddresses = ["203.0.113.9:4000"]
        try await messenger.receiveHello(hello, from: bob)
        let blocked = try await messenger.store.contact(bob.peerID)
        #expect(blocked?.presenceSecret == [UInt8](repeating: 7, count: 32))
        #expect(blocked?.addresses == ["198.51.100.7:4000"])
    }
}
