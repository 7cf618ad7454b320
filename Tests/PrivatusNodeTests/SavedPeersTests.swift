import PrivatusCrypto
import PrivatusStore
import PrivatusTesting
import Testing

@testable import PrivatusNode

/// The DHT nodes a node keeps to rejoin through after a restart.
@Suite struct SavedPeersTests {
    @Test func atMostSixteenSavedNodesAreReadBackAndNothingSavedReadsAsNone() throws {
        let scratch = try TemporaryDirectory("privatus-saved-peers")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: IdentityKeys().databaseKey)
        #expect(NodeDHT.savedPeers(in: store).isEmpty)
        let lines = (1...20).map { "127.0.0.\($0):4000" }
        try store.setSetting(NodeDHT.savedPeersSetting, to: Array(lines.joined(separator: "\n").utf8))
        #expect(NodeDHT.savedPeers(in: store) == Array(lines.prefix(NodeDHT.savedPeerCount)))
        // Bytes that are not UTF-8 read as nothing saved.
        try store.setSetting(NodeDHT.savedPeersSetting, to: [0xff, 0xfe])
        #expect(NodeDHT.savedPeers(in: store).isEmpty)
    }
}
