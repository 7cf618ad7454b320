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
    public func addFileTransfer(
        peer: PeerID, direction: MessageDirection, name: String, size: UInt64, hash: [UInt8], chunkSize: UInt32
    ) throws -> FileTransfer {
        guard size <= Self.maximumFileBytes, name.utf8.count <= 1024 else { throw StoreError.tooLarge }
        guard Self.chunkSizes.contains(chunkSize), hash.count == 32,
            FileTransfer.chunkCount(size: size, chunkSize: chunkSize) <= Self.maximumChunks
        else { throw StoreError.outOfRange }
        let transfer = FileTransfer(
            id: Self.newRowID(), peer: peer, direction: direction, name: name, size: size, hash: hash,
            chunkSize: chunkSize, state: .offered,
            chunkBitmap: [UInt8](
                repeating: 0, count: (FileTransfer.chunkCount(size: size, chunkSize: chunkSize) + 7) / 8))
        let sealed = try sealer.seal(
            Self.encodeFile(transfer), table: "file_transfers", column: "sealed_file", rowID: transfer.id)
        try write { db in
            let conversation = try conversationRow(for: peer, in: db).pk
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

    /// `version u8 (1) ‖ peer (32) ‖ direction u8 ‖ chunk size u32 ‖ hash (32) ‖ name (UTF-8, the rest)`
    static func encodeFile(_ transfer: FileTransfer) -> [UInt8] {
        var out: [UInt8] = [1]
        out += transfer.peer.bytes
        out.append(UInt8(transfer.direction.rawValue))
        out.appendBigEndian(transfer.chunkSize)
        out += transfer.hash
        out += transfer.name.utf8
        return out
    }

    func decodeFile(_ row: Row) throws -> FileTransfer {
        let id = Array(row["id"] as Data)
        let sealed = try sealer.open(row["sealed_file"], table: "file_transfers", column: "sealed_file", rowID: id)
        var reader = ByteReader(sealed)
        guard reader.readUInt8() == 1, let peerBytes = reader.read(32), let peer = try? PeerID(bytes: peerBytes),
            let directionByte = reader.readUInt8(), let direction = MessageDirection(rawValue: Int(directionByte)),
            let chunkSize = reader.readUInt32(), let hash = reader.read(32),
            let name = String(validating: reader.read(reader.remaining) ?? [], as: UTF8.self),
            let state = FileTransferState(rawValue: row["state"]), let size = row["size"] as Int64?, size >= 0
        else { throw StoreError.damagedRow(table: "file_transfers") }
        let bitmap = Array(row["chunk_bitmap"] as Data)
        guard bitmap.count == (FileTransfer.chunkCount(size: UInt64(size), chunkSize: chunkSize) + 7) / 8 else {
            throw StoreError.damagedRow(table: "file_transfers")
        }
        return FileTransfer(
            id: id, peer: peer, direction: direction, name: name, size: UInt64(size), hash: hash,
            chunkSize: chunkSize, state: state, chunkBitmap: bitmap)
    }
}
