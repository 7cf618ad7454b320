import Foundation
import GRDB
import PrivatusCore

/// Where a file transfer stands.
public enum FileTransferState: Int, Sendable, Hashable, CaseIterable {
    case offered = 0
    case transferring = 1
    case paused = 2
    case complete = 3
    case failed = 4
    case cancelled = 5
    /// The receiver declined the offer (or this node refused it: larger than its maximum).
    case rejected = 6

    /// The name `files list` shows.
    public var name: String {
        switch self {
        case .offered: "offered"
        case .transferring: "transferring"
        case .paused: "paused"
        case .complete: "complete"
        case .failed: "failed"
        case .cancelled: "cancelled"
        case .rejected: "rejected"
        }
    }

    /// Whether the transfer is over (nothing more is sent or asked for).
    public var isFinal: Bool { self == .complete || self == .failed || self == .cancelled || self == .rejected }
}

/// A file transfer as the store keeps it: what a resumed transfer needs (which chunks are in),
/// with the name and the hash sealed.
public struct FileTransfer: Sendable, Hashable {
    /// The transfer's random 16-byte id.
    public var id: [UInt8]
    public var peer: PeerID
    public var direction: MessageDirection
    public var name: String
    public var size: UInt64
    /// The SHA-256 of the whole file.
    public var hash: [UInt8]
    public var chunkSize: UInt32
    public var state: FileTransferState
    /// One bit per chunk (chunk `i` is bit `i % 8` of byte `i / 8`), set when it is stored.
    public var chunkBitmap: [UInt8]
    /// The transfer's chunk key (32 bytes; empty in records of format 1).
    public var key: [UInt8] = []
    public var mediaType: String = ""
    /// Sent: the file's path. Received: the folder chosen at accept (empty: the downloads
    /// folder), then the finished file's path.
    public var path: String = ""
    /// Why it failed or was refused.
    public var reason: String = ""
    /// When the transfer was recorded (Unix ms).
    public var createdAt: UInt64 = 0
    /// An update to the peer that this node committed to send with the transfer's last state
    /// change and has not yet handed to its outbox (the wire kind of the update; 0: none). Set
    /// in the same transaction as the state, cleared once the update message is committed: a
    /// crash in between, or a send that failed, leaves it for the node to send again.
    public var pendingUpdate: UInt8 = 0
    /// ``pendingUpdate`` of a transfer whose offer is owed (no update kind is this large).
    public static let offerOwed: UInt8 = 0xFF

    /// How many chunks are in.
    public var chunksDone: Int { chunkBitmap.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// The bytes of the chunks that are in.
    public var bytesDone: UInt64 {
        let count = chunkCount
        guard count > 0 else { return 0 }
        let last = hasChunk(count - 1) ? size - UInt64(count - 1) * UInt64(chunkSize) : 0
        return UInt64(chunksDone - (hasChunk(count - 1) ? 1 : 0)) * UInt64(chunkSize) + last
    }

    /// The length of chunk `index` (the last one is shorter unless the size divides evenly).
    public func chunkLength(_ index: Int) -> Int {
        let start = UInt64(index) * UInt64(chunkSize)
        return Int(min(UInt64(chunkSize), size - start))
    }

    /// How many chunks the file has.
    public var chunkCount: Int { Self.chunkCount(size: size, chunkSize: chunkSize) }

    /// Whether chunk `index` is in.
    public func hasChunk(_ index: Int) -> Bool {
        index >= 0 && index < chunkCount && chunkBitmap[index / 8] & (1 << (index % 8)) != 0
    }

    /// The chunks still missing, in order.
    public var missingChunks: [Int] { (0..<chunkCount).filter { !hasChunk($0) } }

    static func chunkCount(size: UInt64, chunkSize: UInt32) -> Int {
        Int((size + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }
}

extension Store {
    /// The largest file a transfer may announce (1 TiB) and the chunk sizes allowed.
    public static let maximumFileBytes: UInt64 = 1 << 40
    public static let chunkSizes: ClosedRange<UInt32> = 4096...(16 << 20)
    /// Chunks per file at most (a 128 KiB bitmap): a large file takes large chunks.
    public static let maximumChunks = 1 << 20

    /// Records a new transfer with no chunk in; returns it.
    /// - Throws: ``StoreError/tooLarge`` for a file over 1 TiB or a name over 1 KiB,
    ///   ``StoreError/outOfRange`` for a chunk size outside ``chunkSizes``, more than
    ///   ``maximumChunks`` chunks, or a hash not 32 bytes.
    ///   An `id` given (a received offer's) that is already recorded gives
    ///   ``StoreError/duplicate``.
    @discardableResult
    public func addFileTransfer(
        id: [UInt8]? = nil, peer: PeerID, direction: MessageDirection, name: String, size: UInt64, hash: [UInt8],
        chunkSize: UInt32, key: [UInt8] = [], mediaType: String = "", path: String = "",
        state: FileTransferState = .offered,
        reason: String = "", pendingUpdate: UInt8 = 0
    ) throws -> FileTransfer {
        guard size <= Self.maximumFileBytes, name.utf8.count <= 1024, mediaType.utf8.count <= 255,
            path.utf8.count <= 4096, reason.utf8.count <= 1024
        else { throw StoreError.tooLarge }
        guard Self.chunkSizes.contains(chunkSize), hash.count == 32, key.isEmpty || key.count == 32,
            id == nil || id?.count == 16,
            FileTransfer.chunkCount(size: size, chunkSize: chunkSize) <= Self.maximumChunks
        else { throw StoreError.outOfRange }
        var transfer = FileTransfer(
            id: id ?? Self.newRowID(), peer: peer, direction: direction, name: name, size: size, hash: hash,
            chunkSize: chunkSize, state: state,
            chunkBitmap: [UInt8](
                repeating: 0, count: (FileTransfer.chunkCount(size: size, chunkSize: chunkSize) + 7) / 8))
        transfer.key = key
        transfer.mediaType = mediaType
        transfer.path = path
        transfer.reason = reason
        transfer.pendingUpdate = pendingUpdate
        transfer.createdAt = UInt64(Date().timeIntervalSince1970 * 1000)
        let sealed = try sealer.seal(
            Self.encodeFile(transfer), table: "file_transfers", column: "sealed_file", rowID: transfer.id)
        try write { db in
            let conversation = try conversationRow(for: peer, in: db).pk
            guard
                try Row.fetchOne(db, sql: "SELECT 1 FROM file_transfers WHERE id = ?", arguments: [Data(transfer.id)])
                    == nil
            else { throw StoreError.duplicate }
            try db.execute(
                sql: """
                    INSERT INTO file_transfers (id, conversation_pk, state, size, chunk_bitmap, sealed_file)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    Data(transfer.id), conversation, transfer.state.rawValue, Int64(size), Data(transfer.chunkBitmap),
                    sealed,
                ])
        }
        return transfer
    }

    /// Marks chunks as stored (one transaction; chunks already in are ignored) and returns the
    /// transfer as it now is.
    /// - Throws: ``StoreError/notFound`` for an unknown transfer, ``StoreError/outOfRange`` for a
    ///   chunk index past the end (nothing is marked then).
    @discardableResult
    public func markChunks(_ chunks: some Sequence<Int>, of id: [UInt8]) throws -> FileTransfer {
        try write { db in
            var transfer = try fileTransfer(id, in: db)
            for chunk in chunks {
                guard chunk >= 0, chunk < transfer.chunkCount else { throw StoreError.outOfRange }
                transfer.chunkBitmap[chunk / 8] |= 1 << (chunk % 8)
            }
            try db.execute(
                sql: "UPDATE file_transfers SET chunk_bitmap = ? WHERE id = ?",
                arguments: [Data(transfer.chunkBitmap), Data(id)])
            return transfer
        }
    }

    /// Rewrites a transfer's state, chunks, path and reason (its id, peer, size, hash and key
    /// never change).
    /// - Throws: ``StoreError/notFound`` for an unknown transfer, ``StoreError/tooLarge`` for a
    ///   path over 4 KiB or a reason over 1 KiB.
    public func updateFileTransfer(_ transfer: FileTransfer) throws {
        guard transfer.path.utf8.count <= 4096, transfer.reason.utf8.count <= 1024 else { throw StoreError.tooLarge }
        let sealed = try sealer.seal(
            Self.encodeFile(transfer), table: "file_transfers", column: "sealed_file", rowID: transfer.id)
        try write { db in
            try db.execute(
                sql: "UPDATE file_transfers SET state = ?, chunk_bitmap = ?, sealed_file = ? WHERE id = ?",
                arguments: [transfer.state.rawValue, Data(transfer.chunkBitmap), sealed, Data(transfer.id)])
            guard db.changesCount == 1 else { throw StoreError.notFound }
        }
    }

    /// Moves a transfer to `state` if it is in one of `from`, in one transaction, setting its
    /// reason and path when given. Returns the transfer as it now is, or nil when it was not in
    /// one of `from` (nothing changed).
    /// - Throws: ``StoreError/notFound`` for an unknown transfer.
    public func transitionFileTransfer(
        _ id: [UInt8], to state: FileTransferState, from: Set<FileTransferState>, reason: String? = nil,
        path: String? = nil, pendingUpdate: UInt8? = nil
    ) throws -> FileTransfer? {
        try write { db in
            var transfer = try fileTransfer(id, in: db)
            guard from.contains(transfer.state) else { return nil }
            transfer.state = state
            if let pendingUpdate {
                // An offer never sent is owed no update: the peer never heard of the transfer.
                transfer.pendingUpdate = transfer.pendingUpdate == FileTransfer.offerOwed ? 0 : pendingUpdate
            }
            if let reason { transfer.reason = String(decoding: Array(reason.utf8.prefix(1024)), as: UTF8.self) }
            if let path {
                guard path.utf8.count <= 4096 else { throw StoreError.tooLarge }
                transfer.path = path
            }
            let sealed = try sealer.seal(
                Self.encodeFile(transfer), table: "file_transfers", column: "sealed_file", rowID: transfer.id)
            try db.execute(
                sql: "UPDATE file_transfers SET state = ?, sealed_file = ? WHERE id = ?",
                arguments: [state.rawValue, sealed, Data(id)])
            return transfer
        }
    }

    /// Clears the transfer's pending update once its message is committed, if it is still
    /// `update` (a later state change may have set another); returns whether it was.
    @discardableResult
    public func clearPendingUpdate(_ update: UInt8, of id: [UInt8]) throws -> Bool {
        try write { db in
            var transfer = try fileTransfer(id, in: db)
            guard transfer.pendingUpdate == update else { return false }
            transfer.pendingUpdate = 0
            let sealed = try sealer.seal(
                Self.encodeFile(transfer), table: "file_transfers", column: "sealed_file", rowID: transfer.id)
            try db.execute(
                sql: "UPDATE file_transfers SET sealed_file = ? WHERE id = ?", arguments: [sealed, Data(id)])
            return true
        }
    }

    /// Every transfer, oldest first.
    public func allFileTransfers() throws -> [FileTransfer] {
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM file_transfers ORDER BY pk") }
        return try rows.map(decodeFile)
    }

    /// The transfer with this id, or nil.
    public func fileTransferIfAny(_ id: [UInt8]) throws -> FileTransfer? {
        try pool.read { db in
            guard
                let row = try Row.fetchOne(db, sql: "SELECT * FROM file_transfers WHERE id = ?", arguments: [Data(id)])
            else { return nil }
            return try decodeFile(row)
        }
    }

    /// Moves a transfer to `state`.
    public func setFileTransferState(_ state: FileTransferState, of id: [UInt8]) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE file_transfers SET state = ? WHERE id = ?", arguments: [state.rawValue, Data(id)])
            guard db.changesCount == 1 else { throw StoreError.notFound }
        }
    }

    /// The transfer with this id.
    public func fileTransfer(_ id: [UInt8]) throws -> FileTransfer {
        try pool.read { db in try fileTransfer(id, in: db) }
    }

    /// The transfers with `peer`, oldest first.
    public func fileTransfers(with peer: PeerID) throws -> [FileTransfer] {
        let rows = try pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT f.* FROM file_transfers f JOIN conversations c ON c.pk = f.conversation_pk
                    WHERE c.conversation_index = ? ORDER BY f.pk
                    """,
                arguments: [index.conversation(with: peer)])
        }
        return try rows.map(decodeFile)
    }

    func fileTransfer(_ id: [UInt8], in db: Database) throws -> FileTransfer {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM file_transfers WHERE id = ?", arguments: [Data(id)])
        else { throw StoreError.notFound }
        return try decodeFile(row)
    }

    /// Format 3: `version u8 (3) ‖ peer (32) ‖ direction u8 ‖ chunk size u32 ‖ hash (32) ‖
    /// created u64 ‖ key length u8 ‖ key ‖` then name, media type, path and reason, each as
    /// `length u32 ‖ UTF-8`, then `pending update u8`. Format 2 (read only) ended with the
    /// reason; format 1 with the hash and the name as the rest.
    static func encodeFile(_ transfer: FileTransfer) -> [UInt8] {
        var out: [UInt8] = [3]
        out += transfer.peer.bytes
        out.append(UInt8(transfer.direction.rawValue))
        out.appendBigEndian(transfer.chunkSize)
        out += transfer.hash
        out.appendBigEndian(transfer.createdAt)
        out.append(UInt8(transfer.key.count))
        out += transfer.key
        for text in [transfer.name, transfer.mediaType, transfer.path, transfer.reason] {
            out.appendBigEndian(UInt32(text.utf8.count))
            out += text.utf8
        }
        out.append(transfer.pendingUpdate)  // format 3
        return out
    }

    func decodeFile(_ row: Row) throws -> FileTransfer {
        let id = Array(row["id"] as Data)
        let sealed = try sealer.open(row["sealed_file"], table: "file_transfers", column: "sealed_file", rowID: id)
        var reader = ByteReader(sealed)
        let version = reader.readUInt8()
        guard (1...3).contains(version ?? 0), let peerBytes = reader.read(32),
            let peer = try? PeerID(bytes: peerBytes),
            let directionByte = reader.readUInt8(), let direction = MessageDirection(rawValue: Int(directionByte)),
            let chunkSize = reader.readUInt32(), let hash = reader.read(32),
            let state = FileTransferState(rawValue: row["state"]), let size = row["size"] as Int64?, size >= 0
        else { throw StoreError.damagedRow(table: "file_transfers") }
        var texts: [String] = []
        var createdAt: UInt64 = 0
        var key: [UInt8] = []
        var pendingUpdate: UInt8 = 0
        if version == 1 {
            guard let name = String(validating: reader.read(reader.remaining) ?? [], as: UTF8.self) else {
                throw StoreError.damagedRow(table: "file_transfers")
            }
            texts = [name, "", "", ""]
        } else {
            guard let created = reader.readUInt64(), let keyLength = reader.readUInt8(),
                let keyBytes = reader.read(Int(keyLength))
            else { throw StoreError.damagedRow(table: "file_transfers") }
            createdAt = created
            key = keyBytes
            for _ in 0..<4 {
                guard let length = reader.readUInt32(), let bytes = reader.read(Int(length)),
                    let text = String(validating: bytes, as: UTF8.self)
                else { throw StoreError.damagedRow(table: "file_transfers") }
                texts.append(text)
            }
            if version == 3 {
                guard let pending = reader.readUInt8() else { throw StoreError.damagedRow(table: "file_transfers") }
                pendingUpdate = pending
            }
        }
        let name = texts[0]
        let bitmap = Array(row["chunk_bitmap"] as Data)
        guard bitmap.count == (FileTransfer.chunkCount(size: UInt64(size), chunkSize: chunkSize) + 7) / 8 else {
            throw StoreError.damagedRow(table: "file_transfers")
        }
        var transfer = FileTransfer(
            id: id, peer: peer, direction: direction, name: name, size: UInt64(size), hash: hash,
            chunkSize: chunkSize, state: state, chunkBitmap: bitmap)
        transfer.key = key
        transfer.mediaType = texts[1]
        transfer.path = texts[2]
        transfer.reason = texts[3]
        transfer.createdAt = createdAt
        transfer.pendingUpdate = pendingUpdate
        return transfer
    }
}
