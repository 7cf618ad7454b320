import Crypto
import Foundation
import PrivatusCore
import PrivatusStore
import PrivatusTesting
import Testing

@Suite struct FileTransferTests {
    @Test func aTransferResumesFromTheChunksRecordedAndSealsItsNameAndHash() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let path = scratch.child("privatus.sqlite")
        let key = SymmetricKey(size: .bits256)
        let peer = PeerID(identityPublicKey: [9])
        let name = "holiday-\(UUID().uuidString).jpg"
        let hash = Array(SHA256.hash(data: Array(name.utf8)))
        let id: [UInt8]
        do {
            let store = try Store(path: path, databaseKey: key)
            // 10 chunks of 64 KiB, the last one short.
            let transfer = try store.addFileTransfer(
                peer: peer, direction: .received, name: name, size: 9 * 65_536 + 100, hash: hash, chunkSize: 65_536)
            id = transfer.id
            #expect(transfer.chunkCount == 10 && transfer.missingChunks == Array(0..<10))
            try store.setFileTransferState(.transferring, of: id)
            try store.markChunks([0, 1, 2, 7], of: id)
            #expect(throws: StoreError.outOfRange) { try store.markChunks([3, 10], of: id) }
            try store.setFileTransferState(.paused, of: id)
        }
        // After a restart the transfer picks up where it stopped.
        let store = try Store(path: path, databaseKey: key)
        var transfer = try store.fileTransfer(id)
        #expect(transfer.state == .paused && transfer.name == name && transfer.hash == hash)
        #expect(transfer.missingChunks == [3, 4, 5, 6, 8, 9], "chunk 3 of the refused batch was not marked")
        transfer = try store.markChunks([3, 4, 5, 6, 8, 9, 9], of: id)
        #expect(transfer.missingChunks.isEmpty)
        try store.setFileTransferState(.complete, of: id)
        #expect(try store.fileTransfers(with: peer).map(\.state) == [.complete])
        #expect(try store.fileTransfers(with: PeerID(identityPublicKey: [8])).isEmpty)

        try store.checkpoint()
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(raw.range(of: Data(name.utf8)) == nil, "the file name is sealed")
        #expect(raw.range(of: Data(hash)) == nil, "the hash is sealed")
        #expect(raw.range(of: Data("holiday".utf8)) == nil)
    }

    @Test func outOfBoundsTransfersAreRefused() throws {
        let scratch = try TemporaryDirectory("privatus-store")
        defer { scratch.remove() }
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
        let peer = PeerID(identityPublicKey: [9])
        let hash = [UInt8](repeating: 1, count: 32)
        #expect(throws: StoreError.tooLarge) {
            try store.addFileTransfer(
                peer: peer, direction: .sent, name: "f", size: Store.maximumFileBytes + 1, hash: hash, chunkSize: 65_536
            )
        }
        #expect(throws: StoreError.outOfRange) {
            try store.addFileTransfer(peer: peer, direction: .sent, name: "f", size: 10, hash: hash, chunkSize: 1)
        }
        #expect(throws: StoreError.outOfRange) {
            try store.addFileTransfer(peer: peer, direction: .sent, name: "f", size: 10, hash: [1], chunkSize: 65_536)
        }
        #expect(throws: StoreError.outOfRange, "2^28 chunks of 4 KiB: a bitmap of 32 MiB") {
            try store.addFileTransfer(
                peer: peer, direction: .received, name: "f", size: Store.maximumFileBytes, hash: hash, chunkSize: 4096)
        }
        #expect(throws: StoreError.notFound) { try store.fileTransfer([UInt8](repeating: 0, count: 16)) }
        #expect(throws: StoreError.notFound) {
            try store.setFileTransferState(.failed, of: [UInt8](repeating: 0, count: 16))
        }
        // An empty file has no chunk and nothing missing.
        let empty = try store.addFileTransfer(
            peer: peer, direction: .sent, name: "empty", size: 0, hash: hash, chunkSize: 65_536)
        #expect(empty.chunkCount == 0 && empty.missingChunks.isEmpty && empty.chunkBitmap.isEmpty)
        #expect(try store.fileTransfer(empty.id) == empty)
    }
}
