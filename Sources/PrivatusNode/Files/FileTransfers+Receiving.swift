import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusNet
import PrivatusProfile
import PrivatusStore
import PrivatusWire

/// An incoming transfer in progress: its partial file, what is asked for, what is written but
/// not yet recorded, and the running hash of the chunks that arrived in order.
final class Receiving {
    var transfer: FileTransfer
    let cipher: FileChunkCipher?
    let descriptor: Int32
    /// Chunks asked for that have not arrived.
    var outstanding: Set<Int> = []
    /// Where the search for chunks to ask for goes on.
    var cursor = 0
    /// Chunks written to the partial file whose bits are not in the store yet.
    var unmarked: [Int] = []
    var hasher = SHA256()
    /// The chunks before this one are in `hasher`.
    var hashedUpTo = 0
    var refused = 0
    var lastArrival = ContinuousClock.now
    var lastEvent = ContinuousClock.now
    /// When the sender may be dialled again.
    var nextDial = ContinuousClock.now
    /// The link the last request went over.
    var askedOver: Link?
    /// Set once every chunk is in: the file is being checked and placed.
    var finishing = false
    /// A background sync of the partial file is running.
    var syncing = false
    /// A page-aligned buffer chunks are written from: the kernel's copy into the page cache
    /// from an unaligned source (a Swift array's storage) ran several times slower on the
    /// machines measured (BENCHMARKS.md, "Files").
    let writeBuffer: UnsafeMutableRawPointer

    /// Opens (or, `fresh`, creates anew) the partial file of `transfer`.
    init(_ transfer: FileTransfer, partial: String, fresh: Bool) throws {
        self.transfer = transfer
        cipher =
            transfer.chunkCount > 0
            ? try FileChunkCipher(key: transfer.key, transferID: transfer.id, chunkCount: UInt32(transfer.chunkCount))
            : nil
        let flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (fresh ? O_CREAT | O_TRUNC : 0)
        descriptor = open(partial, flags, 0o600)
        guard descriptor >= 0 else { throw FileTransferError.unreadable }
        writeBuffer = UnsafeMutableRawPointer.allocate(byteCount: Int(transfer.chunkSize), alignment: 4096)
    }

    deinit { writeBuffer.deallocate() }

    func close() { _ = Glibc.close(descriptor) }

    /// Writes a chunk at `offset` through the aligned buffer.
    func write(_ chunk: [UInt8], at offset: Int) -> Bool {
        guard chunk.count <= Int(transfer.chunkSize) else { return false }
        chunk.withUnsafeBytes { writeBuffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return FileTransfers.write(
            UnsafeRawBufferPointer(start: writeBuffer, count: chunk.count), to: descriptor, at: offset)
    }

    var isDone: Bool { transfer.chunksDone == transfer.chunkCount }
}

extension FileTransfers {
    /// Asks the sender for the next chunks, up to ``window`` outstanding.
    func ask(_ transfer: Receiving, over given: Link?) async {
        guard transfer.transfer.state == .transferring, receiving[transfer.transfer.id] === transfer,
            !transfer.finishing
        else { return }
        let count = transfer.transfer.chunkCount
        var wanted: [UInt32] = []
        let room = min(Self.window - transfer.outstanding.count, FileWant.maximumChunks)
        var wrapped = false
        while wanted.count < room {
            if transfer.cursor >= count {
                // Chunks asked for earlier and refused are missing behind the cursor: once more
                // from the start.
                guard !wrapped else { break }
                wrapped = true
                transfer.cursor = 0
                continue
            }
            let index = transfer.cursor
            transfer.cursor += 1
            if !transfer.transfer.hasChunk(index), !transfer.outstanding.contains(index) {
                wanted.append(UInt32(index))
            }
        }
        guard !wanted.isEmpty else { return }
        transfer.outstanding.formUnion(wanted.map(Int.init))
        var link = given
        if link == nil || link?.isActive != true { link = await messenger.openLink(to: transfer.transfer.peer) }
        // No link: dial the sender, at most every ``dialInterval`` (a contact offline for hours
        // is not dialled every second; its node dials this one when it comes back).
        if link == nil, ContinuousClock.now >= transfer.nextDial {
            transfer.nextDial = .now + Self.dialInterval
            link = await messenger.link(to: transfer.transfer.peer)
        }
        guard let link else {
            transfer.outstanding.subtract(wanted.map(Int.init))
            return
        }
        let want = FileWant.with {
            $0.transferID = Data(transfer.transfer.id)
            $0.chunks = wanted
        }
        // Queued without waiting: this runs inside the link's inbound loop, which must not wait
        // for its own link's send queue (two nodes sending each other files would stall).
        do {
            transfer.askedOver = link
            _ = try link.enqueue(.fileWant(want), on: .bulk)
        } catch {
            transfer.outstanding.subtract(wanted.map(Int.init))
        }
    }

    /// A chunk from a sender: refused unless it was asked for and opens under the transfer's
    /// key at its index with the right length; else written, and the next one asked for.
    func receiveChunk(_ chunk: FileChunk, from peer: PeerID, on link: Link?) async {
        let id = Array(chunk.transferID)
        let index = Int(chunk.index)
        guard let transfer = receiving[id], transfer.transfer.peer == peer,
            transfer.outstanding.remove(index) != nil, let cipher = transfer.cipher, isContact(peer)
        else {
            counters.chunksRefused.increment()
            return
        }
        transfer.lastArrival = .now
        let plaintext: [UInt8]
        do {
            let length = transfer.transfer.chunkLength(index)
            let opened = try cipher.open(Array(chunk.sealed), index: chunk.index, compressed: chunk.compressed)
            plaintext = chunk.compressed ? try ChunkCompression.decompress(opened, length: length) : opened
            guard plaintext.count == length else { throw FileChunkError.malformed }
        } catch {
            counters.chunksRefused.increment()
            transfer.refused += 1
            logger.debug("file chunk refused", metadata: ["error": "\(error)"])
            if transfer.refused >= Self.maximumRefusedChunks {
                fail(transfer.transfer, reason: "chunks from the sender did not verify")
            } else {
                await ask(transfer, over: link)
            }
            return
        }
        guard transfer.write(plaintext, at: Int(index) * Int(transfer.transfer.chunkSize)) else {
            fail(transfer.transfer, reason: "writing the partial file failed")
            return
        }
        transfer.transfer.chunkBitmap[index / 8] |= 1 << (index % 8)
        transfer.unmarked.append(index)
        chunksReceived[id, default: 0] += 1
        counters.bytesReceived.increment(by: plaintext.count)
        bytesSinceTick += plaintext.count
        if index == transfer.hashedUpTo {
            transfer.hasher.update(data: plaintext)
            transfer.hashedUpTo += 1
        }
        if transfer.isDone {
            // Checked and placed off this link's inbound loop.
            Task { await self.finish(transfer) }
            return
        }
        if transfer.unmarked.count >= Self.flushEvery { flushInBackground(transfer) }
        if ContinuousClock.now - transfer.lastEvent >= .milliseconds(250) {
            transfer.lastEvent = .now
            publish(transfer.transfer)
        }
        await ask(transfer, over: link)
    }

    /// Syncs the partial file, then records the chunks written since the last time. A failed
    /// sync fails the transfer (returns false): what the disk did not take is not recorded.
    @discardableResult
    func flush(_ transfer: Receiving) -> Bool {
        guard !transfer.unmarked.isEmpty else { return true }
        guard fdatasync(transfer.descriptor) == 0 else {
            fail(transfer.transfer, reason: "writing the partial file failed")
            return false
        }
        do {
            try store.markChunks(transfer.unmarked, of: transfer.transfer.id)
            transfer.unmarked.removeAll()
        } catch {
            logger.warning("recording received chunks failed")
            logger.debug("recording received chunks failed", metadata: ["error": "\(error)"])
        }
        return true
    }

    /// Syncs the partial file off the actor (chunks keep arriving meanwhile), then records the
    /// chunks written before the sync began. One sync at a time per transfer.
    func flushInBackground(_ transfer: Receiving) {
        guard !transfer.syncing, !transfer.unmarked.isEmpty else { return }
        let batch = transfer.unmarked
        transfer.unmarked.removeAll()
        transfer.syncing = true
        let descriptor = transfer.descriptor
        Task {
            let synced = await Task.detached(priority: .userInitiated) { fdatasync(descriptor) == 0 }.value
            self.recordSynced(batch, of: transfer, synced: synced)
        }
    }

    func recordSynced(_ batch: [Int], of transfer: Receiving, synced: Bool) {
        transfer.syncing = false
        guard receiving[transfer.transfer.id] === transfer, !transfer.finishing else { return }
        guard synced else {
            fail(transfer.transfer, reason: "writing the partial file failed")
            return
        }
        do {
            try store.markChunks(batch, of: transfer.transfer.id)
        } catch {
            transfer.unmarked += batch  // recorded with the next batch
            logger.warning("recording received chunks failed")
            logger.debug("recording received chunks failed", metadata: ["error": "\(error)"])
        }
    }

    /// Every chunk is in: syncs and checks the SHA-256 (the rest of it read back off the actor),
    /// links the file into its folder under a safe, unused name, and tells the sender.
    func finish(_ transfer: Receiving) async {
        let id = transfer.transfer.id
        guard receiving[id] === transfer, !transfer.finishing else { return }
        transfer.finishing = true
        guard flush(transfer) else { return }
        let hasher = transfer.hasher
        let descriptor = transfer.descriptor
        let from = transfer.hashedUpTo * Int(transfer.transfer.chunkSize)
        let size = transfer.transfer.size
        let digest = await Task.detached(priority: .utility) {
            Self.finishHash(hasher, descriptor: descriptor, from: from, size: size)
        }.value
        guard receiving[id] === transfer else { return }  // cancelled meanwhile
        guard let digest, digest == transfer.transfer.hash else {
            fail(
                transfer.transfer,
                reason: digest == nil
                    ? "reading the partial file failed" : "the received file does not match its SHA-256")
            return
        }
        let folder = Self.folder(of: transfer.transfer, downloads: settings.downloads)
        let final: String
        do {
            if !FileIO.isDirectory(folder) { try FileIO.makeDirectory(folder) }
            final = try await place(transfer, in: folder)
        } catch {
            fail(transfer.transfer, reason: "the file could not be moved into its folder")
            return
        }
        guard receiving[id] === transfer else { return }
        transfer.close()
        receiving[id] = nil
        counters.completed.increment()
        counters.active.record(receiving.count + sending.count)
        // Not moved (it ended meanwhile, say the sender cancelled): nothing to tell.
        guard
            let complete = try? store.transitionFileTransfer(
                id, to: .complete, from: [.transferring], path: final, pendingUpdate: Self.owe(.complete))
        else {
            publish((try? store.fileTransfer(id)) ?? transfer.transfer)
            return
        }
        publish(complete)
        await notify(complete.id)
    }

    /// The SHA-256 of the file, `hasher` holding its first `from` bytes and the rest read from
    /// `descriptor`; nil if reading fails.
    static func finishHash(_ hasher: SHA256, descriptor: Int32, from: Int, size: UInt64) -> [UInt8]? {
        var hasher = hasher
        var offset = from
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while UInt64(offset) < size {
            let want = Int(min(UInt64(buffer.count), size - UInt64(offset)))
            let got = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, want, offset) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { return nil }
            hasher.update(data: buffer[0..<got])
            offset += got
        }
        return Array(hasher.finalize())
    }

    /// The folder a received file goes to: the downloads folder, the one chosen at accept, or
    /// (a name was already chosen before a crash) the folder of that name.
    static func folder(of transfer: FileTransfer, downloads: String) -> String {
        if transfer.path.isEmpty { return downloads }
        if FileIO.isDirectory(transfer.path) { return transfer.path }
        return FileIO.parentDirectory(of: transfer.path)
    }

    /// Links the verified partial file into `folder` under the first free safe form of its name
    /// (never replacing a file), recording the name before linking (so a node stopped right
    /// after finds it), removes the partial name, and returns the new path. Across file systems
    /// the file is first copied (off the actor) to a hidden temporary name in `folder`, removed
    /// again on every path.
    func place(_ transfer: Receiving, in folder: String) async throws -> String {
        let partial = partialPath(transfer.transfer.id)
        var source = partial
        var temporary: String?
        defer { if let temporary { unlink(temporary) } }
        for _ in 0..<64 {
            let name = DownloadName.safe(transfer.transfer.name, taken: { FileIO.exists(folder + "/" + $0) })
            let candidate = folder + "/" + name
            _ = try store.transitionFileTransfer(
                transfer.transfer.id, to: .transferring, from: [.transferring], path: candidate)
            if link(source, candidate) == 0 {
                unlink(partial)
                try? FileIO.syncDirectory(folder)
                return candidate
            }
            switch errno {
            case EEXIST:
                continue
            case EXDEV where temporary == nil:
                let copy = folder + "/." + UUID().uuidString + ".privatus-partial"
                temporary = copy
                try await Task.detached(priority: .utility) { try Self.copyFile(partial, to: copy) }.value
                source = copy
            default:
                throw FileTransferError.unreadable
            }
        }
        throw FileTransferError.unreadable
    }

    static func copyFile(_ from: String, to: String) throws {
        let input = Glibc.open(from, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileTransferError.unreadable }
        defer { Glibc.close(input) }
        let output = Glibc.open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw FileTransferError.unreadable }
        defer { Glibc.close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: Int = 0
        while true {
            let got = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, $0.count, offset) }
            guard got >= 0 else { throw FileTransferError.unreadable }
            if got == 0 { break }
            guard write(Array(buffer[0..<got]), to: output, at: offset) else { throw FileTransferError.unreadable }
            offset += Int(got)
        }
        guard fsync(output) == 0 else { throw FileTransferError.unreadable }
    }

    /// Writes all of `bytes` at `offset`.
    static func write(_ bytes: [UInt8], to descriptor: Int32, at offset: Int) -> Bool {
        bytes.withUnsafeBytes { write($0, to: descriptor, at: offset) }
    }

    static func write(_ buffer: UnsafeRawBufferPointer, to descriptor: Int32, at offset: Int) -> Bool {
        guard buffer.count > 0 else { return true }
        var done = 0
        while done < buffer.count {
            let wrote = pwrite(descriptor, buffer.baseAddress! + done, buffer.count - done, offset + done)
            if wrote < 0, errno == EINTR { continue }
            guard wrote > 0 else { return false }
            done += wrote
        }
        return true
    }
}
