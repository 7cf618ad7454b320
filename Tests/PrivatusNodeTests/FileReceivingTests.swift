import CompressNIO
import Crypto
import Foundation
import Logging
import NIOCore
import PrivatusCore
import PrivatusCrypto
import PrivatusStore
import PrivatusTesting
import PrivatusWire
import Testing

@testable import PrivatusNode

/// The receiving side of a file transfer, driven in process with a real store and real files:
/// what a hostile or broken sender can send, and the checks before accepting.
@Suite struct FileReceivingTests {
    let scratch: TemporaryDirectory
    let keys = IdentityKeys()
    let bob = IdentityKey().publicKey.peerID

    init() throws {
        scratch = try TemporaryDirectory("privatus-file-receiving")
    }

    /// A messenger with Bob as a contact (its send loop running, so the transfers' own messages
    /// are committed) and the transfers, with `free` bytes reported free; `prepare` writes to
    /// the store before the transfers start (what a node finds after a crash).
    func files(
        free: UInt64 = .max, maximum: UInt64 = 1 << 30, prepare: (Store) throws -> Void = { _ in }
    ) async throws -> (FileTransfers, Messenger, Task<Void, Never>) {
        let store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: keys.databaseKey)
        let messenger = try Messenger(store: store, keys: keys, name: "alice", logger: Logger(label: "test"))
        _ = try await messenger.addContact(Invite(peerID: bob, addresses: []), name: "bob")
        try prepare(store)
        let loop = Task { await messenger.runQueues() }
        var settings = FileTransfers.Settings(
            downloads: scratch.child("downloads"), partials: scratch.child("transfers"))
        settings.freeSpace = { _ in free }
        settings.maximumBytes = maximum
        let files = FileTransfers(store: store, messenger: messenger, settings: settings, logger: Logger(label: "test"))
        await files.start()
        return (files, messenger, loop)
    }

    /// The first transfer once it is no longer `transferring` (finishing runs in a task of its
    /// own; at most ≈ 10 s).
    func settled(_ files: FileTransfers) async throws -> FileView {
        for _ in 0..<1_000 {
            if let first = try await files.list().first, first.state != "transferring" { return first }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try #require(try await files.list().first)
    }

    /// An offer of `data` with a fresh key.
    func offer(_ data: [UInt8], name: String = "photo.png") -> FileOffer {
        FileOffer.with {
            $0.transferID = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
            $0.name = name
            $0.size = UInt64(data.count)
            $0.mediaType = "image/png"
            $0.sha256 = Data(SHA256.hash(data: data))
            $0.key = Data(FileChunkCipher.newKey())
            $0.chunkSize = FileTransfers.chunkSize
        }
    }

    func chunk(
        _ data: [UInt8], _ index: Int, of offer: FileOffer, tamper: Bool = false, deflated: [UInt8]? = nil
    ) throws -> FileChunk {
        let size = Int(offer.chunkSize)
        let count = (data.count + size - 1) / size
        let cipher = try FileChunkCipher(
            key: Array(offer.key), transferID: Array(offer.transferID), chunkCount: UInt32(count))
        var sealed = try cipher.seal(
            deflated ?? Array(data[index * size..<min(data.count, (index + 1) * size)]), index: UInt32(index),
            compressed: deflated != nil)
        if tamper { sealed[sealed.count / 2] ^= 1 }
        return FileChunk.with {
            $0.transferID = offer.transferID
            $0.index = UInt32(index)
            $0.sealed = Data(sealed)
            $0.compressed = deflated != nil
        }
    }

    @Test func aTamperedChunkIsRefusedAndTheIntactOneCompletesTheFile() async throws {
        defer { scratch.remove() }
        let (files, _, loop) = try await files()
        defer { loop.cancel() }
        let data = (0..<(600 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let offer = offer(data)
        let id = Array(offer.transferID)
        _ = files.applyReceived(.offer(offer), from: bob, isContact: true)
        let accepted = try await files.accept(id)
        #expect(accepted.state == .transferring && accepted.chunkCount == 3)
        // No link to Bob: the test plays the sender, after noting the chunks as asked for.
        await files.expect(id, chunks: [0, 1, 2])
        await files.receiveChunk(try chunk(data, 1, of: offer, tamper: true), from: bob, on: nil)
        var now = try #require(try await files.list().first)
        #expect(now.chunksDone == 0, "the tampered chunk was not written")
        // A chunk for another index, or from another peer, is refused too.
        var moved = try chunk(data, 0, of: offer)
        moved.index = 2
        await files.receiveChunk(moved, from: bob, on: nil)
        await files.receiveChunk(try chunk(data, 0, of: offer), from: IdentityKey().publicKey.peerID, on: nil)
        now = try #require(try await files.list().first)
        #expect(now.chunksDone == 0)
        // The intact chunks complete it.
        await files.expect(id, chunks: [0, 1, 2])
        for index in 0..<3 { await files.receiveChunk(try chunk(data, index, of: offer), from: bob, on: nil) }
        now = try await settled(files)
        #expect(now.state == "complete", "\(now.reason ?? "")")
        let landed = try #require(now.path)
        #expect(landed == scratch.child("downloads") + "/photo.png")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: landed))) == data)
        let mode = try FileManager.default.attributesOfItem(atPath: landed)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func deflatedChunksInflateToTheirLengthAndNoFurther() async throws {
        defer { scratch.remove() }
        let (files, _, loop) = try await files()
        defer { loop.cancel() }
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog\n", count: 8_000).utf8)
        let offer = offer(text, name: "notes.txt")
        let id = Array(offer.transferID)
        _ = files.applyReceived(.offer(offer), from: bob, isContact: true)
        _ = try await files.accept(id)
        let size = Int(FileTransfers.chunkSize)
        let first = try #require(ChunkCompression.compress(Array(text[0..<size])))
        #expect(first.count < size / 10, "text deflates well")
        #expect(ChunkCompression.compress((0..<4096).map { _ in UInt8.random(in: 0...255) }) == nil, "noise does not")
        // A deflated chunk that inflates past its length (a bomb: 16 MiB of zeros) is refused.
        var bomb = ByteBuffer(bytes: [UInt8](repeating: 0, count: 16 << 20))
        let bombBytes = Array(try bomb.compress(with: ChunkCompression.algorithm).readableBytesView)
        await files.expect(id, chunks: [0, 1])
        #expect(throws: FileChunkError.malformed) { try ChunkCompression.decompress(bombBytes, length: size) }
        await files.receiveChunk(try chunk(text, 0, of: offer, deflated: bombBytes), from: bob, on: nil)
        var now = try #require(try await files.list().first)
        #expect(now.chunksDone == 0)
        await files.expect(id, chunks: [0, 1])
        await files.receiveChunk(try chunk(text, 0, of: offer, deflated: first), from: bob, on: nil)
        let second = try #require(ChunkCompression.compress(Array(text[size...])))
        await files.receiveChunk(try chunk(text, 1, of: offer, deflated: second), from: bob, on: nil)
        now = try await settled(files)
        #expect(now.state == "complete", "\(now.reason ?? "")")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: try #require(now.path)))) == text)
    }

    @Test func aFileNotMatchingItsHashFailsAndLeavesNothingInTheDownloads() async throws {
        defer { scratch.remove() }
        let (files, _, loop) = try await files()
        defer { loop.cancel() }
        let data = [UInt8](repeating: 7, count: 300 << 10)
        var offer = offer(data)
        // A sender that holds the key but sends other bytes than it hashed.
        offer.sha256 = Data(SHA256.hash(data: [UInt8](repeating: 8, count: 300 << 10)))
        let id = Array(offer.transferID)
        _ = files.applyReceived(.offer(offer), from: bob, isContact: true)
        _ = try await files.accept(id)
        await files.expect(id, chunks: [0, 1])
        for index in 0..<2 { await files.receiveChunk(try chunk(data, index, of: offer), from: bob, on: nil) }
        let now = try await settled(files)
        #expect(now.state == "failed" && now.reason == "the received file does not match its SHA-256")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch.child("downloads"))) ?? [] == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.child("transfers")) == [])
    }

    @Test func anOfferLargerThanTheFreeSpaceIsNotAccepted() async throws {
        defer { scratch.remove() }
        let (files, _, loop) = try await files(free: 100_000)
        defer { loop.cancel() }
        let offer = offer([UInt8](repeating: 1, count: 200_000))
        _ = files.applyReceived(.offer(offer), from: bob, isContact: true)
        await #expect(throws: FileTransferError.notEnoughSpace(needed: 200_000, free: 100_000)) {
            try await files.accept(Array(offer.transferID))
        }
        let now = try #require(try await files.list().first)
        #expect(now.state == "offered", "still waiting: the user can make room and accept")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.child("transfers")) == [])
    }

    @Test func offersOverTheMaximumOrFromStrangersAreNotKept() async throws {
        defer { scratch.remove() }
        let (files, _, loop) = try await files(maximum: 1_000)
        defer { loop.cancel() }
        let large = offer([UInt8](repeating: 1, count: 2_000))
        _ = files.applyReceived(.offer(large), from: bob, isContact: true)
        let refused = try #require(try await files.list().first)
        #expect(refused.state == "rejected" && refused.reason == "larger than the maximum of 1000 bytes")
        let text = files.applyReceived(
            .offer(offer([1, 2, 3])), from: IdentityKey().publicKey.peerID, isContact: false)
        #expect(text == "File: photo.png (3 bytes) (not downloaded: the sender is not a contact)")
        #expect(try await files.list().count == 1)
        // The sender is told why, once the offer's message is committed.
        await files.received([Array(large.transferID)])
        let told = try await bobsConversation(files)
        #expect(told.map(\.body) == ["Declined the file photo.png: larger than the maximum of 1000 bytes"])
    }

    /// The messages of the conversation with Bob, oldest first.
    func bobsConversation(_ files: FileTransfers) async throws -> [StoredMessage] {
        try await files.messenger.messages(with: bob.hex, limit: 50, before: nil)
    }

    /// The conversation with Bob once it holds at least `count` messages (owed messages go in
    /// tasks of their own; at most ≈ 10 s).
    func bobsConversation(_ files: FileTransfers, atLeast count: Int) async throws -> [StoredMessage] {
        for _ in 0..<1_000 {
            let messages = try await bobsConversation(files)
            if messages.count >= count { return messages }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try await bobsConversation(files)
    }

    @Test func anUpdateOwedWhenTheNodeStoppedIsSentAtTheNextStartAndOnlyOnce() async throws {
        defer { scratch.remove() }
        // Declined just before a crash: the state is recorded with the update it owes, and the
        // update's message never reached the outbox.
        let declined = offer([1, 2, 3])
        let id = Array(declined.transferID)
        let (files, messenger, loop) = try await files { store in
            _ = try store.addFileTransfer(
                id: id, peer: bob, direction: .received, name: "photo.png", size: 3, hash: Array(declined.sha256),
                chunkSize: declined.chunkSize, key: Array(declined.key), state: .rejected,
                pendingUpdate: FileTransfers.owe(.rejected))
        }
        defer { loop.cancel() }
        let store = files.store
        #expect(try await bobsConversation(files).isEmpty)
        await files.tick()
        let sent = try await bobsConversation(files, atLeast: 1)
        #expect(sent.map(\.body) == ["Declined the file photo.png"])
        #expect(sent.first?.state == .queued, "committed in the outbox, waiting for Bob")
        guard case .update(let update)? = sent.first?.attachment.flatMap(FileMessage.init(encoded:)) else {
            Issue.record("the message carries no file update")
            return
        }
        #expect(update.kind == .rejected && Array(update.transferID) == id)
        #expect(try store.fileTransferIfAny(id)?.pendingUpdate == 0, "owed no more")
        // Nothing is owed any more: later ticks send nothing (their tasks would have run by the
        // time a message sent after them is in).
        await files.tick()
        await files.tick()
        _ = try await messenger.send("after the ticks", to: "bob")
        #expect(try await bobsConversation(files).map(\.body) == ["Declined the file photo.png", "after the ticks"])
    }

    @Test func anOfferRecordedJustBeforeACrashIsSentAtTheNextStart() async throws {
        defer { scratch.remove() }
        let key = FileChunkCipher.newKey()
        let hash = Array(SHA256.hash(data: [1, 2, 3]))
        var recorded: FileTransfer?
        let (files, _, loop) = try await files { store in
            recorded = try store.addFileTransfer(
                peer: bob, direction: .sent, name: "notes.txt", size: 3, hash: hash,
                chunkSize: FileTransfers.chunkSize, key: key, mediaType: "text/plain",
                path: scratch.child("notes.txt"), pendingUpdate: FileTransfers.offerOwed)
        }
        defer { loop.cancel() }
        let store = files.store
        let id = try #require(recorded?.id)
        await files.tick()
        let sent = try await bobsConversation(files, atLeast: 1)
        #expect(sent.map(\.body) == ["File: notes.txt (3 bytes)"])
        guard case .offer(let offer)? = sent.first?.attachment.flatMap(FileMessage.init(encoded:)) else {
            Issue.record("the message carries no offer")
            return
        }
        #expect(Array(offer.transferID) == id && Array(offer.key) == key && Array(offer.sha256) == hash)
        #expect(offer.size == 3 && offer.mediaType == "text/plain" && offer.chunkSize == FileTransfers.chunkSize)
        #expect(try store.fileTransferIfAny(id)?.pendingUpdate == 0)
    }
}

extension FileReceivingTests {
    @Test func offeredNamesAreMadeSafeByTheReceiver() async throws {
        defer { scratch.remove() }
        let (files, _, loop) = try await files()
        defer { loop.cancel() }
        for (offered, kept) in [
            ("../../.bashrc", "bashrc"), ("a\\..\\b.txt", "b.txt"), ("/etc/passwd", "passwd"), ("..", "file"),
            ("x\u{202E}gpj.exe", "xgpj.exe"),
        ] {
            let text = files.applyReceived(.offer(offer([1], name: offered)), from: bob, isContact: true)
            #expect(text == "File: \(kept) (1 bytes)")
        }
        #expect(try await files.list().map(\.name) == ["bashrc", "b.txt", "passwd", "file", "xgpj.exe"])
    }

    @Test func nothingIsAcceptedWithoutAskingWhenTheAutomaticLimitIsZero() async throws {
        defer { scratch.remove() }
        let (files, messenger, loop) = try await files()
        defer { loop.cancel() }
        var contact = try #require(try await messenger.store.contact(bob))
        contact.verified = true
        try await messenger.store.saveContact(contact)
        let empty = offer([])
        _ = files.applyReceived(.offer(empty), from: bob, isContact: true)
        await files.received([Array(empty.transferID)])
        #expect(try await files.list().first?.state == "offered", "an empty file from a verified contact waits too")
    }
}

extension FileTransfers {
    /// Notes chunks as asked for (the test has no link to ask over).
    func expect(_ id: [UInt8], chunks: [Int]) {
        receiving[id]?.outstanding.formUnion(chunks)
    }
}
