import Crypto
import Foundation
import Logging
import Metrics
import PrivatusCore
import PrivatusCrypto
import PrivatusNet
import PrivatusProfile
import PrivatusStore
import PrivatusWire

/// Why a file request was refused (the control API answers 400, 404, 409 or 507).
public enum FileTransferError: Error, Sendable, Hashable, CustomStringConvertible {
    case notARegularFile
    case unreadable
    case tooLarge(maximum: UInt64)
    case unknownTransfer
    case notOffered
    case alreadyOver
    case notEnoughSpace(needed: UInt64, free: UInt64)
    case noSuchFolder

    public var description: String {
        switch self {
        case .notARegularFile: "the path is not a regular file"
        case .unreadable: "the file cannot be read"
        case .tooLarge(let maximum): "the file is larger than the maximum of \(maximum) bytes"
        case .unknownTransfer: "no such transfer"
        case .notOffered: "the transfer is not an offer waiting for an answer"
        case .alreadyOver: "the transfer is already over"
        case .notEnoughSpace(let needed, let free): "not enough free space: \(needed) bytes needed, \(free) free"
        case .noSuchFolder: "the folder does not exist"
        }
    }
}

/// Files sent to and received from contacts (docs/PROTOCOL.md, "Files").
///
/// The offer and every change of state travel as chat messages inside the end-to-end session
/// (committed, retried and acknowledged like text). The bytes do not: the receiver asks the
/// sender for chunks (``FileWant``) over their authenticated link, at most ``window`` at a
/// time, and the sender answers with chunks sealed under the transfer's own key
/// (``FileChunk``) on the bulk stream. So the receiver paces the transfer, a resumed transfer
/// asks only for what is missing, and chat on the same link is never queued behind a file.
///
/// The receiver writes chunks into `<profile>/transfers/<id>.part` (0600) and records each
/// batch in the chunk bitmap after the data reached the disk; the finished file is checked
/// against the offer's SHA-256 and only then linked into the downloads folder.
public actor FileTransfers {
    /// Where files go and what is accepted.
    public struct Settings: Sendable {
        /// The downloads folder (default `<profile>/downloads`).
        public var downloads: String
        /// The folder of partial files (`<profile>/transfers`).
        public var partials: String
        /// The largest file accepted (larger offers are refused at once).
        public var maximumBytes: UInt64 = 64 << 30
        /// Offers from verified contacts up to this size are accepted without asking (0: never).
        public var autoAcceptBytes: UInt64 = 0
        /// The most bytes per second sent to one peer (a token bucket; nil: as fast as the link
        /// goes).
        public var bandwidth: UInt64?
        /// Free bytes of the file system holding a folder (statvfs; a test injects its own).
        public var freeSpace: @Sendable (String) -> UInt64? = FileTransfers.freeBytes

        public init(downloads: String, partials: String) {
            self.downloads = downloads
            self.partials = partials
        }
    }

    /// The size of every chunk but a file's last: 256 KiB (BENCHMARKS.md, "Files").
    public static let chunkSize: UInt32 = 256 << 10
    /// The largest file a transfer can carry: 2^20 chunks of 256 KiB (256 GiB).
    public static let largestFile = UInt64(Store.maximumChunks) * UInt64(chunkSize)
    /// Chunks asked for and not yet arrived, per transfer.
    static let window = 16
    /// Chunks written before the partial file is synced and the bitmap recorded.
    static let flushEvery = 64
    /// Chunks that fail to open before the transfer fails.
    static let maximumRefusedChunks = 16
    /// Chunk indexes queued per outgoing transfer at most (wants past it are dropped).
    static let maximumQueuedChunks = 4 * FileWant.maximumChunks
    /// A transfer whose asked-for chunks have not arrived for this long asks again.
    static let stallTimeout = Duration.seconds(10)
    /// The least time between two dials of a sender a transfer waits for.
    static let dialInterval = Duration.seconds(10)

    nonisolated let store: Store
    public nonisolated let settings: Settings
    let messenger: Messenger
    let events: NodeEvents
    let logger: Logger
    let counters = FileCounters()

    var receiving: [[UInt8]: Receiving] = [:]
    var sending: [[UInt8]: Sending] = [:]
    /// Peers whose chunks are being sent, the link they go over, and the turn of the round robin.
    var serving: Set<PeerID> = []
    var servingLinks: [PeerID: Link] = [:]
    var turn = 0
    /// Chunks sent and received per transfer in this run (kept after a transfer ends, for
    /// `files list`).
    var chunksSent: [[UInt8]: Int] = [:]
    var chunksReceived: [[UInt8]: Int] = [:]
    /// File bytes moved since the last tick (for the rate gauge).
    var bytesSinceTick = 0
    /// The bandwidth limit's bucket per peer.
    var buckets: [PeerID: TokenBucket] = [:]
    /// Files whose SHA-256 was checked in this run, with what `stat` said then, and the checks
    /// in progress (requests that arrive meanwhile wait for the same one).
    var checked: [[UInt8]: FileStamp] = [:]
    var checking: [[UInt8]: Task<Void, Never>] = [:]
    /// Chunks asked for while the transfer's file is being opened and checked.
    var pendingWants: [[UInt8]: (peer: PeerID, chunks: Set<Int>)] = [:]
    /// Transfers whose peer was told how they ended in this run (an answer to a request for
    /// a transfer that is over), and offers refused here whose sender was told.
    var toldFinal: Set<[UInt8]> = []
    /// Transfers whose recorded pending update is being sent now, and those whose send failed
    /// (tried again each tick).
    var notifying: Set<[UInt8]> = []
    var owed: Set<[UInt8]> = []

    public init(store: Store, messenger: Messenger, settings: Settings, logger: Logger) {
        self.store = store
        self.messenger = messenger
        self.settings = settings
        self.events = messenger.events
        self.logger = logger
    }

    /// Loads the transfers in progress (their partial files reopened; one whose every chunk is
    /// in is finished, one whose file was already placed is marked complete) and removes
    /// partial files no transfer needs any more.
    public func start() {
        do {
            if !FileIO.isDirectory(settings.partials) { try FileIO.makeDirectory(settings.partials) }
            var keep = Set<String>()
            for transfer in try store.allFileTransfers()
            where transfer.direction == .received && transfer.state == .transferring {
                guard let receiver = try? Receiving(transfer, partial: partialPath(transfer.id), fresh: false) else {
                    // Placed just before a crash (the path then names the file) or lost.
                    Task { await self.recoverPlaced(transfer) }
                    continue
                }
                receiving[transfer.id] = receiver
                keep.insert(Self.partialName(transfer.id))
                if receiver.isDone { Task { await self.finish(receiver) } }
            }
            // Updates owed to peers when the node stopped (a crash between a state change and
            // its message, or a send that failed).
            for transfer in try store.allFileTransfers() where transfer.pendingUpdate != 0 {
                owed.insert(transfer.id)
            }
            for name in (try? FileIO.entries(of: settings.partials)) ?? [] where !keep.contains(name) {
                unlink(settings.partials + "/" + name)
            }
            counters.active.record(receiving.count)
        } catch {
            logger.error("file transfers not loaded")
            logger.debug("file transfers not loaded", metadata: ["error": "\(error)"])
        }
    }

    /// A transfer in progress without its partial file: complete if the file it names is in
    /// place with the offered hash (the node stopped between placing it and recording that),
    /// else failed.
    func recoverPlaced(_ transfer: FileTransfer) async {
        if !transfer.path.isEmpty, !FileIO.isDirectory(transfer.path),
            let (_, digest) = try? await Self.hashFile(at: transfer.path), digest == transfer.hash,
            let complete = try? store.transitionFileTransfer(
                transfer.id, to: .complete, from: [.transferring], pendingUpdate: Self.owe(.complete))
        {
            publish(complete)
            await notify(complete.id)
            return
        }
        fail(transfer, reason: "the partial file was lost")
    }

    /// Syncs what was received and closes every file.
    public func stop() {
        for transfer in receiving.values {
            flush(transfer)
            transfer.close()
        }
        receiving.removeAll()
        for transfer in sending.values { transfer.close() }
        sending.removeAll()
    }

    // MARK: - User requests

    /// Offers the file at `path` (absolute) to a contact: hashes it, records the transfer and
    /// sends the offer (as a chat message). Nothing else is sent before the contact accepts.
    public func send(path: String, to reference: String) async throws -> FileTransfer {
        let contact = try await messenger.resolve(reference)
        guard contact.state == .contact else { throw ChatError.notAContact }
        let (stamp, digest) = try await Self.hashFile(at: path)
        // The receiver's own maximum may be lower: it declines such an offer and says so.
        guard stamp.size <= Self.largestFile else { throw FileTransferError.tooLarge(maximum: Self.largestFile) }
        let name = DownloadName.safe((path as NSString).lastPathComponent)
        // Recorded owing its offer: a crash before the offer's message is committed sends it at
        // the next start.
        let transfer = try store.addFileTransfer(
            peer: contact.peerID, direction: .sent, name: name, size: stamp.size, hash: digest,
            chunkSize: Self.chunkSize, key: FileChunkCipher.newKey(), mediaType: Self.mediaType(of: name), path: path,
            pendingUpdate: Self.offerOwed)
        checked[transfer.id] = stamp
        do {
            try await sendOwed(transfer.id)
        } catch {
            // Not sent (the send queue full, the node stopping, the contact gone): the transfer
            // ends here rather than wait as an offer the contact never saw.
            if let failed = try? store.transitionFileTransfer(
                transfer.id, to: .failed, from: [.offered], reason: "the offer could not be sent", pendingUpdate: 0)
            {
                publish(failed)
            }
            throw error
        }
        let offered = (try? store.fileTransfer(transfer.id)) ?? transfer
        publish(offered)
        return offered
    }

    /// Accepts an offer: checks the free space, creates the partial file and starts asking for
    /// chunks; the finished file goes to `folder` (default: the downloads folder).
    public func accept(_ id: [UInt8], to folder: String? = nil) async throws -> FileTransfer {
        guard let transfer = try store.fileTransferIfAny(id), transfer.direction == .received else {
            throw FileTransferError.unknownTransfer
        }
        guard transfer.state == .offered else {
            throw transfer.state.isFinal ? FileTransferError.alreadyOver : FileTransferError.notOffered
        }
        if let folder, !FileIO.isDirectory(folder) { throw FileTransferError.noSuchFolder }
        if !FileIO.isDirectory(settings.partials) { try FileIO.makeDirectory(settings.partials) }
        for place in Set([settings.partials, folder ?? settings.downloads].filter(FileIO.isDirectory)) {
            let free = settings.freeSpace(place) ?? .max
            guard free >= transfer.size else {
                throw FileTransferError.notEnoughSpace(needed: transfer.size, free: free)
            }
        }
        let receiver = try Receiving(transfer, partial: partialPath(id), fresh: true)
        var accepted: FileTransfer?
        defer {
            if accepted == nil {
                receiver.close()
                unlink(partialPath(id))
            }
        }
        try? FileIO.syncDirectory(settings.partials)
        accepted = try store.transitionFileTransfer(
            id, to: .transferring, from: [.offered], path: folder ?? "", pendingUpdate: Self.owe(.accepted))
        guard let accepted else { throw FileTransferError.notOffered }
        receiver.transfer = accepted
        receiving[id] = receiver
        counters.active.record(receiving.count + sending.count)
        await notify(accepted.id)
        publish(accepted)
        if accepted.chunkCount == 0 {
            Task { await self.finish(receiver) }
        } else {
            await ask(receiver, over: nil)
        }
        if let current = receiving[id]?.transfer { return current }
        return try store.fileTransfer(id)
    }

    /// Declines an offer.
    public func reject(_ id: [UInt8]) async throws -> FileTransfer {
        guard let transfer = try store.fileTransferIfAny(id), transfer.direction == .received else {
            throw FileTransferError.unknownTransfer
        }
        guard
            let rejected = try store.transitionFileTransfer(
                id, to: .rejected, from: [.offered], pendingUpdate: Self.owe(.rejected))
        else {
            throw transfer.state.isFinal ? FileTransferError.alreadyOver : FileTransferError.notOffered
        }
        await notify(rejected.id)
        publish(rejected)
        return rejected
    }

    /// Gives up a transfer in either direction; the other side is told.
    public func cancel(_ id: [UInt8]) async throws -> FileTransfer {
        guard let transfer = try store.fileTransferIfAny(id) else { throw FileTransferError.unknownTransfer }
        guard
            let cancelled = try store.transitionFileTransfer(
                id, to: .cancelled, from: [.offered, .transferring, .paused], pendingUpdate: Self.owe(.cancelled))
        else { throw FileTransferError.alreadyOver }
        forget(id)
        await notify(cancelled.id)
        publish(cancelled)
        return cancelled
    }

    /// Every transfer, oldest first, as it stands now.
    public func list() throws -> [FileView] {
        try store.allFileTransfers().map { stored in
            let current = receiving[stored.id]?.transfer ?? stored
            return FileView(current, chunksSent: chunksSent[stored.id], chunksReceived: chunksReceived[stored.id])
        }
    }

    // MARK: - Messages from the peer, through the chat

    /// Applies a file offer or update that arrived in a chat message, before the message is
    /// committed (synchronously, from the messenger; a resent message is recognised by the
    /// messenger first). Offers are recorded only from contacts. Returns the text the
    /// conversation shows for it.
    nonisolated func applyReceived(_ file: FileMessage, from peer: PeerID, isContact: Bool) -> String {
        switch file {
        case .offer(let offer):
            let text = Self.describe(offer)
            guard isContact else { return text + " (not downloaded: the sender is not a contact)" }
            do {
                guard try store.fileTransferIfAny(Array(offer.transferID)) == nil else { return text }
                let tooLarge = offer.size > settings.maximumBytes
                try store.addFileTransfer(
                    id: Array(offer.transferID), peer: peer, direction: .received,
                    name: DownloadName.safe(offer.name), size: offer.size, hash: Array(offer.sha256),
                    chunkSize: offer.chunkSize, key: Array(offer.key), mediaType: Self.cleanMediaType(offer.mediaType),
                    state: tooLarge ? .rejected : .offered,
                    reason: tooLarge ? "larger than the maximum of \(settings.maximumBytes) bytes" : "",
                    pendingUpdate: tooLarge ? Self.owe(.rejected) : 0)
            } catch {
                logger.debug("file offer not recorded", metadata: ["error": "\(error)"])
            }
            return text
        case .update(let update):
            let id = Array(update.transferID)
            guard let transfer = try? store.fileTransferIfAny(id), transfer.peer == peer else {
                return "File update for an unknown transfer"
            }
            let name = transfer.name
            let outgoing = transfer.direction == .sent
            let live: Set<FileTransferState> = [.offered, .transferring, .paused]
            let reason = update.reason.isEmpty ? nil : update.reason
            switch update.kind {
            case .accepted where outgoing:
                _ = try? store.transitionFileTransfer(id, to: .transferring, from: [.offered])
                return "Accepted the file \(name)"
            case .rejected where outgoing:
                _ = try? store.transitionFileTransfer(id, to: .rejected, from: live, reason: reason, pendingUpdate: 0)
                return "Declined the file \(name)"
            case .complete where outgoing:
                _ = try? store.transitionFileTransfer(id, to: .complete, from: live, pendingUpdate: 0)
                return "Received the file \(name)"
            case .cancelled:
                _ = try? store.transitionFileTransfer(id, to: .cancelled, from: live, pendingUpdate: 0)
                return "Cancelled the file \(name)"
            case .failed:
                _ = try? store.transitionFileTransfer(
                    id, to: .failed, from: live, reason: reason ?? "failed", pendingUpdate: 0)
                return "The file \(name) failed: \(update.reason)"
            default:
                return "File update for \(name)"
            }
        }
    }

    /// After a chat message with a file part was committed: acts on the transfer's new state
    /// (an offer auto-accepted or refused, a transfer the peer ended dropped).
    func received(_ ids: [[UInt8]]) async {
        for id in ids {
            guard let transfer = try? store.fileTransferIfAny(id) else { continue }
            if transfer.state.isFinal {
                // Refused here (too large): the sender is told.
                if transfer.pendingUpdate != 0 { await notify(id) }
                forget(id)
                publish(transfer)
                continue
            }
            publish(transfer)
            if transfer.direction == .received, transfer.state == .offered, settings.autoAcceptBytes > 0,
                transfer.size <= settings.autoAcceptBytes,
                (try? store.contact(transfer.peer))?.verified == true
            {
                do {
                    _ = try await accept(id)
                } catch {
                    logger.info("an offered file was not accepted automatically")
                    logger.debug("automatic accept refused", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// A link to `peer` came up: incoming transfers from it ask again for what is missing.
    func linkUp(_ peer: PeerID) async {
        for transfer in receiving.values where transfer.transfer.peer == peer {
            // Chunks asked for over a link that is still up are still coming (both nodes can
            // dial each other: a second link is not a reason to ask twice).
            if !transfer.outstanding.isEmpty, transfer.askedOver?.isActive == true { continue }
            transfer.outstanding.removeAll()
            transfer.cursor = 0
            await ask(transfer, over: nil)
        }
    }

    /// Every second: records what was written, and asks again where asked-for chunks stopped
    /// coming (the link dropped) or nothing is asked for.
    public func tick() async {
        // Owed messages go in tasks of their own: a full send queue does not hold up the chunks.
        for id in owed where !notifying.contains(id) {
            Task { await self.notify(id) }
        }
        let now = ContinuousClock.now
        counters.rate.record(bytesSinceTick)
        bytesSinceTick = 0
        for transfer in Array(receiving.values) {
            // Earlier iterations waited: this one may have ended meanwhile.
            guard receiving[transfer.transfer.id] === transfer, !transfer.finishing else { continue }
            flushInBackground(transfer)
            if transfer.outstanding.isEmpty || now - transfer.lastArrival > Self.stallTimeout {
                transfer.outstanding.removeAll()
                transfer.cursor = 0
                transfer.lastArrival = now
                await ask(transfer, over: nil)
            }
        }
    }

    // MARK: - Helpers

    /// Drops what is held for a transfer that ended (an incoming one's partial file removed).
    func forget(_ id: [UInt8]) {
        if let transfer = receiving.removeValue(forKey: id) {
            transfer.close()
            unlink(partialPath(id))
        }
        if let transfer = sending.removeValue(forKey: id) { transfer.close() }
        counters.active.record(receiving.count + sending.count)
    }

    /// Marks a transfer failed, drops it and tells the peer why; returns false (doing nothing
    /// more) when it was over already.
    @discardableResult
    func fail(_ transfer: FileTransfer, reason: String) -> Bool {
        let live: Set<FileTransferState> = [.offered, .transferring, .paused]
        let failed = try? store.transitionFileTransfer(
            transfer.id, to: .failed, from: live, reason: reason, pendingUpdate: Self.owe(.failed))
        forget(transfer.id)
        guard let failed else { return false }
        counters.failed.increment()
        publish(failed)
        Task { await self.notify(failed.id) }
        return true
    }

    func partialPath(_ id: [UInt8]) -> String { settings.partials + "/" + Self.partialName(id) }

    static func partialName(_ id: [UInt8]) -> String { Hex.encode(id) + ".part" }

    /// Tells watchers where a transfer stands.
    func publish(_ transfer: FileTransfer) {
        events.publish(
            NodeEvent(
                type: "file", id: Hex.encode(transfer.id), peerId: transfer.peer.hex, state: transfer.state.name,
                name: transfer.name, bytes: transfer.bytesDone, size: transfer.size))
    }

    /// What the conversation shows for an offer.
    static func describe(_ offer: FileOffer) -> String {
        "File: \(DownloadName.safe(offer.name)) (\(offer.size) bytes)"
    }

    /// Free bytes for an unprivileged user on the file system holding `path`.
    @Sendable public static func freeBytes(_ path: String) -> UInt64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }

    /// A media type from the name's extension (the receiver shows it; nothing depends on it).
    static func mediaType(of name: String) -> String {
        let types = [
            "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
            "pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown", "json": "application/json",
            "zip": "application/zip", "gz": "application/gzip", "mp3": "audio/mpeg", "mp4": "video/mp4",
            "ogg": "audio/ogg", "webm": "video/webm", "html": "text/html", "csv": "text/csv",
        ]
        let suffix = (name as NSString).pathExtension.lowercased()
        return types[suffix] ?? "application/octet-stream"
    }

    /// An offered media type if it looks like one (`type/subtype` of plain ASCII), else the
    /// generic one.
    static func cleanMediaType(_ offered: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-_/")
        guard offered.utf8.count <= FileOffer.maximumMediaTypeBytes, offered.allSatisfy(allowed.contains),
            offered.split(separator: "/", omittingEmptySubsequences: false).count == 2
        else { return "application/octet-stream" }
        return offered
    }
}

/// A token bucket: `rate` bytes per second, at most `capacity` saved up. Taking more than is
/// there leaves a debt that the caller waits out.
struct TokenBucket: Sendable {
    let rate: Double
    let capacity: Double
    var tokens: Double
    var last: ContinuousClock.Instant

    init(rate: UInt64, capacity: UInt64, now: ContinuousClock.Instant) {
        self.rate = Double(max(rate, 1))
        self.capacity = Double(capacity)
        tokens = Double(capacity)
        last = now
    }

    /// Takes `bytes`; returns how long to wait before sending them.
    mutating func take(_ bytes: Int, now: ContinuousClock.Instant) -> Duration {
        tokens = min(capacity, tokens + (now - last).seconds * rate)
        last = now
        tokens -= Double(bytes)
        guard tokens < 0 else { return .zero }
        return .nanoseconds(Int64(-tokens / rate * 1e9))
    }
}

/// The file metrics (no peers or names in labels).
struct FileCounters: Sendable {
    let bytesSent = Counter(label: "privatus_files_bytes_sent_total")
    /// What the chunks sent took on the link (sealed, deflated where that helped).
    let sealedBytesSent = Counter(label: "privatus_files_sealed_bytes_sent_total")
    let chunksDeflated = Counter(label: "privatus_files_chunks_deflated_total")
    let bytesReceived = Counter(label: "privatus_files_bytes_received_total")
    let chunksRefused = Counter(label: "privatus_files_chunks_refused_total")
    let failed = Counter(label: "privatus_files_failed_total")
    let completed = Counter(label: "privatus_files_completed_total")
    let active = Gauge(label: "privatus_files_active")
    /// File bytes sent and received in the last second (set by ``FileTransfers/tick()``).
    let rate = Gauge(label: "privatus_files_bytes_per_second")
}
