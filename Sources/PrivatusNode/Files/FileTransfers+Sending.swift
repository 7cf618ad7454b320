import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusNet
import PrivatusStore
import PrivatusWire

/// What `stat` says about a file: enough to notice that it changed since it was hashed.
struct FileStamp: Sendable, Hashable {
    var size: UInt64
    var modified: timespec
    var inode: UInt64

    static func == (a: FileStamp, b: FileStamp) -> Bool {
        a.size == b.size && a.inode == b.inode && a.modified.tv_sec == b.modified.tv_sec
            && a.modified.tv_nsec == b.modified.tv_nsec
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(size)
        hasher.combine(inode)
    }

    /// The stamp of the regular file open as `descriptor`.
    init(descriptor: Int32) throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FileTransferError.unreadable }
        guard info.st_mode & S_IFMT == S_IFREG else { throw FileTransferError.notARegularFile }
        size = UInt64(info.st_size)
        modified = info.st_mtim
        inode = UInt64(info.st_ino)
    }
}

/// An outgoing transfer being served: the file open as it was hashed, and the chunks the
/// receiver asked for.
final class Sending {
    var transfer: FileTransfer
    let cipher: FileChunkCipher
    let descriptor: Int32
    /// What `fstat` said when the file was hashed through `descriptor`.
    let stamp: FileStamp
    var queue: [Int] = []
    var head = 0
    var queued = Set<Int>()
    /// Whether chunks are offered deflated (text-like media types).
    let compressible: Bool

    init(_ transfer: FileTransfer, descriptor: Int32, stamp: FileStamp) throws {
        guard transfer.chunkCount > 0 else { throw FileTransferError.unknownTransfer }
        self.transfer = transfer
        self.descriptor = descriptor
        self.stamp = stamp
        compressible = ChunkCompression.isCompressible(transfer.mediaType)
        cipher = try FileChunkCipher(
            key: transfer.key, transferID: transfer.id, chunkCount: UInt32(transfer.chunkCount))
    }

    func close() { _ = Glibc.close(descriptor) }

    /// Whether the file is still as it was hashed (an edit in place changes its time or size).
    var isUnchanged: Bool { (try? FileStamp(descriptor: descriptor)) == stamp }

    var hasWork: Bool { head < queue.count }

    func next() -> Int {
        let index = queue[head]
        head += 1
        queued.remove(index)
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        }
        return index
    }

    /// Queues the chunks asked for that are not queued yet, up to the bound.
    func enqueue(_ chunks: some Sequence<Int>) {
        for index in chunks
        where index < transfer.chunkCount && !queued.contains(index)
            && queue.count - head < FileTransfers.maximumQueuedChunks
        {
            queue.append(index)
            queued.insert(index)
        }
    }

    func clearQueue() {
        queue.removeAll()
        head = 0
        queued.removeAll()
    }
}

extension FileTransfers {
    /// The receiver asks for chunks: queued for sending if the transfer is one this node
    /// offered to that contact and not over (the first request counts as the acceptance if the
    /// accept message has not arrived yet). Never waits for file work: the first request of a
    /// run opens and hashes the file in the background (requests that come meanwhile are kept),
    /// so the link's other messages are not held up. A file that changed since it was hashed
    /// fails this transfer and is offered anew under a new key.
    func receiveWant(_ want: FileWant, from peer: PeerID, on link: Link?) {
        let id = Array(want.transferID)
        let chunks = want.chunks.map(Int.init)
        if let link { servingLinks[peer] = link }
        if let open = sending[id] {
            guard open.transfer.peer == peer, isContact(peer) else {
                counters.chunksRefused.increment()
                return
            }
            guard open.isUnchanged else {
                fileChanged(open.transfer)
                return
            }
            open.enqueue(chunks)
            startServing(peer)
            return
        }
        if checking[id] != nil {
            if pendingWants[id]?.peer == peer {
                pendingWants[id]?.chunks.formUnion(chunks.prefix(Self.maximumQueuedChunks))
            }
            return
        }
        guard isContact(peer), let transfer = try? store.fileTransferIfAny(id), transfer.peer == peer,
            transfer.direction == .sent
        else {
            counters.chunksRefused.increment()
            return
        }
        guard !transfer.state.isFinal else {
            tellFinalState(of: transfer)
            return
        }
        pendingWants[id] = (peer, Set(chunks))
        checking[id] = Task { await self.open(transfer) }
    }

    /// Opens an outgoing transfer's file (never through a symbolic link), checks it against the
    /// offer (hashing it again unless this run hashed it as it is now), then serves what was
    /// asked for meanwhile.
    func open(_ transfer: FileTransfer) async {
        let id = transfer.id
        defer { checking[id] = nil }
        let known = checked[id]
        let opened = await Task.detached(priority: .utility) {
            try? Self.openChecked(transfer.path, unless: known)
        }.value
        let wanted = pendingWants.removeValue(forKey: id)
        guard let (descriptor, stamp, digest) = opened else {
            fail(transfer, reason: "the sender can no longer read the file")
            return
        }
        guard let current = try? store.fileTransferIfAny(id), !current.state.isFinal else {
            close(descriptor)
            return
        }
        guard digest.map({ $0 == transfer.hash }) ?? true, stamp.size == transfer.size else {
            close(descriptor)
            fileChanged(current)
            return
        }
        checked[id] = stamp
        guard let open = try? Sending(current, descriptor: descriptor, stamp: stamp) else {
            close(descriptor)
            fail(current, reason: "the sender can no longer read the file")
            return
        }
        if current.state == .offered {
            open.transfer = (try? store.transitionFileTransfer(id, to: .transferring, from: [.offered])) ?? current
            publish(open.transfer)
        }
        sending[id] = open
        counters.active.record(receiving.count + sending.count)
        open.enqueue((wanted?.chunks ?? []).sorted())
        startServing(transfer.peer)
    }

    /// Opens `path` (not through a symbolic link) and hashes it through that descriptor, unless
    /// `fstat` says it is as `known` (hashed in this run); returns the descriptor, its stamp and
    /// the hash (nil when not hashed again).
    static func openChecked(_ path: String, unless known: FileStamp?) throws -> (Int32, FileStamp, [UInt8]?) {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw FileTransferError.unreadable }
        do {
            let stamp = try FileStamp(descriptor: descriptor)
            if let known, known == stamp { return (descriptor, stamp, nil) }
            let digest = try hash(descriptor, size: stamp.size)
            guard try FileStamp(descriptor: descriptor) == stamp else { throw FileTransferError.unreadable }
            return (descriptor, stamp, digest)
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// The SHA-256 of the `size` bytes of the file open as `descriptor`.
    static func hash(_ descriptor: Int32, size: UInt64) throws -> [UInt8] {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset = 0
        while true {
            let got = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if got < 0, errno == EINTR { continue }
            guard got >= 0 else { throw FileTransferError.unreadable }
            if got == 0 { break }
            hasher.update(data: buffer[0..<got])
            offset += got
        }
        guard UInt64(offset) == size else { throw FileTransferError.unreadable }
        return Array(hasher.finalize())
    }

    /// The file changed after it was offered: this transfer fails, and the file as it is now
    /// is offered again under a new id and key (issue 9: the receiver never mixes versions).
    func fileChanged(_ transfer: FileTransfer) {
        guard fail(transfer, reason: "the file changed: it is offered again") else { return }
        Task {
            do {
                _ = try await self.send(path: transfer.path, to: transfer.peer.hex)
            } catch {
                self.logger.debug("a changed file could not be offered again", metadata: ["error": "\(error)"])
            }
        }
    }

    /// A request for a transfer that is over: the receiver missed how it ended (its update was
    /// lost, or is still owed); told once per run once the message is committed.
    func tellFinalState(of transfer: FileTransfer) {
        // Its update is still owed (not yet in the outbox): that one goes, not a second.
        if transfer.pendingUpdate != 0 {
            Task { await self.notify(transfer.id) }
            return
        }
        guard toldFinal.insert(transfer.id).inserted else { return }
        let kind: FileUpdate.Kind =
            switch transfer.state {
            case .complete: .complete
            case .rejected: .rejected
            case .failed: .failed
            default: .cancelled
            }
        let messenger = messenger
        Task {
            do {
                _ = try await messenger.sendFile(
                    .update(FileUpdate(transfer.id, kind, reason: transfer.reason)),
                    describedAs: "The file \(transfer.name) is \(transfer.state.name)", to: transfer.peer)
            } catch {
                await self.untold(transfer.id)  // the next request tries again
            }
        }
    }

    func untold(_ id: [UInt8]) { toldFinal.remove(id) }

    func startServing(_ peer: PeerID) {
        guard !serving.contains(peer) else { return }
        serving.insert(peer)
        Task { await self.serve(peer) }
    }

    /// Whether `peer` is a contact (blocked peers' file messages are dropped).
    func isContact(_ peer: PeerID) -> Bool {
        (try? store.contact(peer))?.state == .contact
    }

    /// Sends the chunks asked for by `peer`, one transfer after another in turn, until none is
    /// asked for or the link fails (then the receiver asks again over its next link).
    func serve(_ peer: PeerID) async {
        defer { serving.remove(peer) }
        while true {
            guard let link = servingLinks[peer], link.isActive else {
                for transfer in sending.values where transfer.transfer.peer == peer { transfer.clearQueue() }
                servingLinks[peer] = nil
                return
            }
            let ready = sending.values.filter { $0.transfer.peer == peer && $0.hasWork }
                .sorted { $0.transfer.createdAt < $1.transfer.createdAt }
            guard !ready.isEmpty else { return }
            turn &+= 1
            let transfer = ready[turn % ready.count]
            let index = transfer.next()
            let length = transfer.transfer.chunkLength(index)
            let offset = index * Int(transfer.transfer.chunkSize)
            // Read straight into the array's storage (no zero fill first).
            let plaintext = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
                var done = 0
                while done < length {
                    let read = pread(transfer.descriptor, buffer.baseAddress! + done, length - done, offset + done)
                    if read < 0, errno == EINTR { continue }
                    guard read > 0 else { break }
                    done += read
                }
                count = done
            }
            let got = plaintext.count
            let deflated = transfer.compressible ? ChunkCompression.compress(plaintext) : nil
            guard got == length,
                let sealed = try? transfer.cipher.seal(
                    deflated ?? plaintext, index: UInt32(index), compressed: deflated != nil)
            else {
                fail(transfer.transfer, reason: "the sender can no longer read the file")
                continue
            }
            let chunk = FileChunk.with {
                $0.transferID = Data(transfer.transfer.id)
                $0.index = UInt32(index)
                $0.sealed = Data(sealed)
                $0.compressed = deflated != nil
            }
            if let rate = settings.bandwidth {
                var bucket =
                    buckets[peer]
                    ?? TokenBucket(rate: rate, capacity: max(rate / 4, UInt64(Self.chunkSize)), now: .now)
                let wait = bucket.take(length, now: .now)
                buckets[peer] = bucket
                if wait > .zero { try? await Task.sleep(for: wait) }
            }
            do {
                try await link.send(.fileChunk(chunk), on: .bulk)
                chunksSent[transfer.transfer.id, default: 0] += 1
                counters.bytesSent.increment(by: length)
                bytesSinceTick += length
                counters.sealedBytesSent.increment(by: sealed.count)
                if deflated != nil { counters.chunksDeflated.increment() }
            } catch {
                servingLinks[peer] = nil
            }
        }
    }

    /// Hashes the regular file at `path` (not through a symbolic link) off the actor; returns
    /// its stamp and SHA-256.
    static func hashFile(at path: String) async throws -> (FileStamp, [UInt8]) {
        try await Task.detached(priority: .utility) {
            let (descriptor, stamp, digest) = try openChecked(path, unless: nil)
            close(descriptor)
            return (stamp, digest ?? [])
        }.value
    }
}
