import Foundation
import PrivatusCore
import PrivatusCrypto

#if canImport(Glibc)
import Glibc
#endif

/// `privatus backup create | restore`: a profile's keystore, public files and a consistent
/// snapshot of its database, in one file sealed under a key from the password
/// (``BackupFormat``; docs/PROTOCOL.md, "Backup").
///
/// The plaintext is a sequence of records: `kind u8 (1 file, 2 end) ‖ name length u8 ‖ name ‖
/// size u64` in a chunk of its own, followed (for a file) by its bytes in chunks of at most
/// 1 MiB. The end record is the last chunk.
public enum ProfileBackup {
    /// The files a backup carries, the keystore last (it is the commit point of a restore).
    static let files = ["identity.json", "config.json", "privatus.sqlite", "keystore"]

    /// Writes a backup of `layout` to `path` (refused if it exists), with the database taken from
    /// `databaseSnapshot` (a consistent copy made with SQLite's backup API). Returns its size.
    @discardableResult
    public static func create(
        layout: ProfileLayout,
        databaseSnapshot: String,
        to path: String,
        password: String,
        parameters: ScryptParameters? = nil
    ) throws -> Int {
        guard !FileIO.exists(path) else { throw ProfileError.exists(path: path) }
        let (header, keys) = try BackupFormat.newHeader(password: password, parameters: parameters)
        let writer = try FileIO.StreamWriter(path: path)
        var index: UInt64 = 0
        func chunk(_ plaintext: [UInt8], last: Bool = false) throws {
            try writer.write(
                try BackupFormat.sealChunk(plaintext, index: index, last: last, header: header, keys: keys))
            index += 1
        }
        do {
            try writer.write(header)
            for name in files {
                let source = name == "privatus.sqlite" ? databaseSnapshot : layout.directory + "/" + name
                let reader = try FileIO.StreamReader(path: source)
                var record: [UInt8] = [1, UInt8(name.utf8.count)] + Array(name.utf8)
                record.appendBigEndian(UInt64(reader.size))
                try chunk(record)
                var remaining = reader.size
                while remaining > 0 {
                    let part = try reader.read(min(remaining, BackupFormat.maximumChunk))
                    try chunk(part)
                    remaining -= part.count
                }
            }
            try chunk([2, 0, 0, 0, 0, 0, 0, 0, 0, 0], last: true)
            return try writer.commit()
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// Restores a backup into `layout`, which must be empty or new (as for `init`). Files are
    /// written atomically, the keystore last; a wrong password or a damaged file writes nothing.
    /// - Throws: ``BackupError`` for the file, ``ProfileError`` for the target.
    public static func restore(from path: String, to layout: ProfileLayout, password: String) throws {
        let reader = try FileIO.StreamReader(path: path, maximumSize: Int.max)
        let header = try reader.readExactly(BackupFormat.headerSize, or: BackupError.notABackup)
        let keys = try BackupFormat.keys(header: header, password: password)

        // Decrypt everything into temporary files beside the target first: nothing is committed
        // before the whole backup has been authenticated, end record included.
        try Profile.checkCreatable(layout)
        try FileIO.makeDirectory(layout.directory)
        let lock = try ProfileLock(profile: layout)
        defer { withExtendedLifetime(lock) {} }
        try Profile.checkCreatable(layout)
        var staged: [(name: String, writer: FileIO.StreamWriter)] = []
        defer { for item in staged { item.writer.abandon() } }
        var index: UInt64 = 0
        func nextChunk() throws -> (plaintext: [UInt8], last: Bool) {
            let (last, size) = try BackupFormat.chunkBodySize(
                prefix: try reader.readExactly(5, or: BackupError.truncated))
            let body = try reader.readExactly(size, or: BackupError.truncated)
            defer { index += 1 }
            return (try BackupFormat.openChunk(body: body, index: index, last: last, header: header, keys: keys), last)
        }
        while true {
            let (record, last) = try nextChunk()
            guard record.count >= 2 else { throw BackupError.damaged }
            if record[0] == 2 {
                guard last, reader.remaining == 0, Set(staged.map(\.name)) == Set(files) else {
                    throw BackupError.damaged
                }
                break
            }
            let nameLength = Int(record[1])
            guard record[0] == 1, !last, record.count == 2 + nameLength + 8,
                let name = String(validating: record[2..<(2 + nameLength)], as: UTF8.self), files.contains(name),
                !staged.contains(where: { $0.name == name })
            else { throw BackupError.damaged }
            let size = record[(2 + nameLength)...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard size <= UInt64(reader.remaining) else { throw BackupError.truncated }
            let writer = try FileIO.StreamWriter(path: layout.directory + "/" + name)
            staged.append((name, writer))
            var remaining = Int(size)
            while remaining > 0 {
                let (part, partLast) = try nextChunk()
                guard !partLast, !part.isEmpty, part.count <= remaining else { throw BackupError.damaged }
                try writer.write(part)
                remaining -= part.count
            }
        }
        // Commit in order, the keystore last.
        for name in files {
            guard let position = staged.firstIndex(where: { $0.name == name }) else { throw BackupError.damaged }
            _ = try staged[position].writer.commit()
            staged.remove(at: position)
        }
    }
}
