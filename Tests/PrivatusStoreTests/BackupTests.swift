import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusProfile
import PrivatusStore
import PrivatusTesting
import Testing

@Suite struct BackupTests {
    static let cheap = try! ScryptParameters(log2N: 10)

    func makeProfile(_ scratch: TemporaryDirectory) throws -> (ProfileLayout, UnlockedProfile, Store) {
        let layout = ProfileLayout(directory: scratch.child("original"))
        let profile = try Profile.create(at: layout, name: "alice", password: "pw", cost: .fixed(Self.cheap))
        let store = try Store(path: layout.databaseFile, databaseKey: profile.contents.keys.databaseKey)
        let peer = PeerID(identityPublicKey: [8])
        try store.addContact(Contact(peerID: peer, identityKey: [8], name: "Bob", state: .contact))
        // Enough content for several 1 MiB chunks.
        let big = String(repeating: "lorem ipsum ", count: 20_000)
        try store.append(
            (0..<30).map { index in
                NewMessage(
                    peer: peer, direction: .sent, state: .delivered, sender: peer, sentAt: UInt64(index),
                    body: "\(index) \(big)")
            })
        return (layout, profile, store)
    }

    func backup(_ scratch: TemporaryDirectory, _ layout: ProfileLayout, _ store: Store) throws -> String {
        let snapshot = scratch.child("snapshot.sqlite")
        try store.snapshot(to: snapshot)
        let file = scratch.child("backup.bin")
        try ProfileBackup.create(
            layout: layout, databaseSnapshot: snapshot, to: file, password: "pw", parameters: Self.cheap)
        return file
    }

    @Test func backupRestoresTheWholeProfileElsewhere() throws {
        let scratch = try TemporaryDirectory("privatus-backup")
        defer { scratch.remove() }
        let (layout, profile, store) = try makeProfile(scratch)
        let file = try backup(scratch, layout, store)
        let target = ProfileLayout(directory: scratch.child("restored"))
        try ProfileBackup.restore(from: file, to: target, password: "pw")
        let restored = try Profile.unlock(target, password: "pw")
        #expect(restored.peerID == profile.peerID)
        let restoredStore = try Store(path: target.databaseFile, databaseKey: restored.contents.keys.databaseKey)
        let peer = PeerID(identityPublicKey: [8])
        #expect(
            try restoredStore.latestMessages(with: peer, limit: 100)
                == (try store.latestMessages(with: peer, limit: 100)))
        #expect(try restoredStore.contact(peer)?.name == "Bob")
        #expect(try restoredStore.check().isEmpty)
        #expect(throws: ProfileError.exists(path: file)) {
            try ProfileBackup.create(
                layout: layout, databaseSnapshot: layout.databaseFile, to: file, password: "pw", parameters: Self.cheap)
        }
    }

    @Test func wrongPasswordOrDamageRestoresNothing() throws {
        let scratch = try TemporaryDirectory("privatus-backup")
        defer { scratch.remove() }
        let (layout, _, store) = try makeProfile(scratch)
        let file = try backup(scratch, layout, store)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))

        func attempt(_ bytes: [UInt8], password: String = "pw") -> (any Error)? {
            let path = scratch.child("attempt.bin")
            try? FileManager.default.removeItem(atPath: path)
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            let target = ProfileLayout(directory: scratch.child("target-\(UUID().uuidString)"))
            defer { try? FileManager.default.removeItem(atPath: target.directory) }
            do {
                try ProfileBackup.restore(from: path, to: target, password: password)
                return nil
            } catch {
                let entries = (try? FileIO.entries(of: target.directory)) ?? []
                #expect(
                    !entries.contains("keystore") && !entries.contains("privatus.sqlite"),
                    "nothing committed: \(entries)")
                return error
            }
        }

        #expect(attempt(original, password: "nope") as? BackupError == .wrongPassword)
        var flipped = original
        flipped[original.count / 2] ^= 1
        #expect(attempt(flipped) as? BackupError == .damaged)
        #expect(attempt(Array(original.dropLast(100))) as? BackupError == .truncated)
        #expect(attempt(Array(original.prefix(BackupFormat.headerSize + 1000))) as? BackupError == .truncated)
        #expect(
            attempt(Array("not a backup at all, but long enough to have a header of some sort.........".utf8))
                as? BackupError == .notABackup)
        #expect(attempt(original) == nil, "the genuine file still restores")
    }

    @Test func chunksCannotBeReorderedOrDropped() throws {
        let (header, keys) = try BackupFormat.newHeader(password: "pw", parameters: Self.cheap)
        let first = try BackupFormat.sealChunk([1, 2, 3], index: 0, last: false, header: header, keys: keys)
        let body = Array(first[5...])
        #expect(try BackupFormat.openChunk(body: body, index: 0, last: false, header: header, keys: keys) == [1, 2, 3])
        #expect(throws: BackupError.damaged) {
            try BackupFormat.openChunk(body: body, index: 1, last: false, header: header, keys: keys)
        }
        #expect(throws: BackupError.damaged) {
            try BackupFormat.openChunk(body: body, index: 0, last: true, header: header, keys: keys)
        }
        #expect(throws: BackupError.damaged) { try BackupFormat.chunkBodySize(prefix: [0, 0x7f, 0xff, 0xff, 0xff]) }
    }
}
