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

    init?(path: String) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        guard let stamp = try? FileStamp(descriptor: descriptor) else { return nil }
        self = stamp
    }
}

/// An outgoing transfer being served: the open file and the chunks the receiver asked for.
final class Sending {
    var transfer: FileTransfer
    let cipher: FileChunkCipher
    let descriptor: Int32
    var queue: [Int] = []
    var head = 0
    var queued = Set<Int>()
    /// Whether chunks are offered deflated (text-like media types).
    let compressible: Bool

    init(_ transfer: FileTransfer) throws {
        guard transfer.chunkCount > 0 else { throw FileTransferError.unknownTransfer }
        self.transfer = transfer
        compressible = ChunkCompression.isCompressible(transfer.mediaType)
        cipher = try FileChunkCipher(
            key: transfer.key, transferID: transfer.id, chunkCount: UInt32(transfer.chunkCount))
        descriptor = open(transfer.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileTransferError.unreadable }
    }

    func close() { _ = Glibc.close(descriptor) }

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

    func clearQueue() {
        queue.removeAll()
        head = 0
        queued.removeAll()
    }
}

extension FileTransfers {
    /// The receiver asks for chunks: queued for sending if the transfer is one this node
    /// offered to that peer and not over (the first request counts as the acceptance if the
    /// accept message has not arrived yet). Before the first chunk of a run the file's SHA-256
    /// is checked again; a changed file fails this transfer and is offered anew under a new key.
    func receiveWant(_ want: FileWant, from peer: PeerID, on link: Link?) async {
        let id = Array(want.transferID)
        guard let serving = await sender(for: id, peer: peer) else {
            counters.chunksRefused.increment()
            return
        }
        for index in want.chunks
        where Int(index) < serving.transfer.chunkCount && !serving.queued.contains(Int(index))
            && serving.queue.count - serving.head < Self.maximumQueuedChunks
        {
            serving.queue.append(Int(index))
            serving.queued.insert(Int(index))
        }
        if let link { servingLinks[peer] = link }
        guard !self.serving.contains(peer) else { return }
        self.serving.insert(peer)
        Task { await self.serve(peer) }
    }

    /// The open outgoing transfer `id` to `peer`, opened (and its file checked) on first use.
    func sender(for id: [UInt8], peer: PeerID) async -> Sending? {
        if let open = sending[id] {
            guard open.transfer.peer == peer else { return nil }
            return open
        }
        guard let transfer = try? store.fileTransferIfAny(id), transfer.peer == peer, transfer.direction == .sent,
            transfer.state == .offered || transfer.state == .transferring
        else { return nil }
        guard let stamp = FileStamp(path: transfer.path) else {
            fail(transfer, reason: "the sender can no longer read the file")
            return nil
        }
        if checked[id] != stamp {
            // Another run hashed it, or it changed since: hashed again before anything is sent.
            let check =
                checking[id]
                ?? Task { [path = transfer.path] in try? await Self.hashFile(at: path) }
            checking[id] = check
            let result = await check.value
            checking[id] = nil
            guard let (now, digest) = result else {
                fail(transfer, reason: "the sender can no longer read the file")
                return nil
            }
            // Another request that waited for the same check may have opened or failed it.
            if let open = sending[id] { return open }
            guard let current = try? store.fileTransferIfAny(id), !current.state.isFinal else { return nil }
            guard digest == transfer.hash, now.size == transfer.size else {
                await fileChanged(transfer)
                return nil
            }
            checked[id] = now
        }
        guard let open = try? Sending(transfer) else {
            fail(transfer, reason: "the sender can no longer read the file")
            return nil
        }
        if transfer.state == .offered {
            open.transfer = (try? store.transitionFileTransfer(id, to: .transferring, from: [.offered])) ?? transfer
            publish(open.transfer)
        }
        sending[id] = open
        counters.active.record(receiving.count + sending.count)
        return open
    }

    /// The file changed after it was offered: this transfer fails, and the file as it is now
    /// is offered again under a new id and key.
    func fileChanged(_ transfer: FileTransfer) async {
        fail(transfer, reason: "the file changed: it is offered again")
        do {
            _ = try await send(path: transfer.path, to: transfer.peer.hex)
        } catch {
            logger.info("a changed file could not be offered again", metadata: ["error": "\(error)"])
        }
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
            var plaintext = [UInt8](repeating: 0, count: length)
            let offset = Int(index) * Int(transfer.transfer.chunkSize)
            let got = plaintext.withUnsafeMutableBytes { buffer in
                var done = 0
                while done < length {
                    let read = pread(transfer.descriptor, buffer.baseAddress! + done, length - done, offset + Int(done))
                    if read < 0, errno == EINTR { continue }
                    guard read > 0 else { break }
                    done += read
                }
                return done
            }
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

    /// Hashes the regular file at `path` off the actor; returns its stamp and SHA-256.
    static func hashFile(at path: String) async throws -> (FileStamp, [UInt8]) {
        try await Task.detached(priority: .utility) {
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw FileTransferError.unreadable }
            defer { close(descriptor) }
            let stamp = try FileStamp(descriptor: descriptor)
            var hasher = SHA256()
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var offset: Int = 0
            while true {
                let got = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
                if got < 0, errno == EINTR { continue }
                guard got >= 0 else { throw FileTransferError.unreadable }
                if got == 0 { break }
                hasher.update(data: buffer[0..<got])
                offset += Int(got)
            }
            guard UInt64(offset) == stamp.size else { throw FileTransferError.unreadable }
            return (stamp, Array(hasher.finalize()))
        }.value
    }
}
