import Crypto
import Foundation

/// Seals and opens the chunks of one file transfer (issue 9; docs/PROTOCOL.md, "Files").
///
/// Each transfer has a fresh 256-bit key, drawn by the sender and given to the receiver inside
/// the end-to-end session with the offer. A chunk is sealed with AES-256-GCM under that key and a
/// random 96-bit nonce, its associated data binding it to its place:
/// `"privatus-file-chunk-v1" ‖ form u8 ‖ transfer id (16) ‖ index u32 ‖ chunk count u32`
/// (big-endian), the form 0 for the chunk as it is, 1 for the chunk deflated.
/// So a chunk moved to another index or another transfer, a chunk of a file of another length,
/// or any changed byte is refused. Sealed form: `nonce (12) ‖ ciphertext ‖ tag (16)`.
/// Random nonces: a chunk sent again after a resume is sealed again, and a transfer has at most
/// 2^20 chunks, far below the 2^32 seals per key that random 96-bit nonces allow.
public struct FileChunkCipher: Sendable {
    public static let keyBytes = 32
    public static let transferIDBytes = 16
    /// Nonce and tag around each chunk.
    public static let overheadBytes = 12 + 16
    /// The most chunks a transfer may have (as the store's transfer records allow).
    public static let maximumChunks: UInt32 = 1 << 20
    /// The largest chunk (the store's limit).
    public static let maximumChunkBytes = 16 << 20

    let key: SymmetricKey
    let transferID: [UInt8]
    let chunkCount: UInt32

    /// A cipher for a transfer of `chunkCount` chunks.
    /// - Throws: ``FileChunkError/badParameters`` for a key that is not 32 bytes, an id that is
    ///   not 16, or a chunk count of 0 or more than ``maximumChunks``.
    public init(key: [UInt8], transferID: [UInt8], chunkCount: UInt32) throws(FileChunkError) {
        guard key.count == Self.keyBytes, transferID.count == Self.transferIDBytes, chunkCount > 0,
            chunkCount <= Self.maximumChunks
        else { throw .badParameters }
        self.key = SymmetricKey(data: key)
        self.transferID = transferID
        self.chunkCount = chunkCount
    }

    /// A fresh random key for a new transfer.
    public static func newKey() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// Seals chunk `index` (`compressed`: the bytes are the chunk deflated).
    /// - Throws: ``FileChunkError/badIndex`` past the last chunk, ``FileChunkError/tooLarge``
    ///   for a chunk over ``maximumChunkBytes``.
    public func seal(
        _ chunk: some DataProtocol, index: UInt32, compressed: Bool = false
    ) throws(FileChunkError)
        -> [UInt8]
    {
        guard index < chunkCount else { throw .badIndex }
        guard chunk.count <= Self.maximumChunkBytes else { throw .tooLarge }
        guard
            let box = try? AES.GCM.seal(
                chunk, using: key, authenticating: associatedData(index, compressed: compressed)),
            let combined = box.combined
        else { throw .sealFailed }
        return Array(combined)
    }

    /// Opens sealed chunk `index`, checking its size before anything is decrypted.
    /// - Throws: ``FileChunkError/badIndex``, ``FileChunkError/tooLarge`` (more than a chunk and
    ///   its overhead), ``FileChunkError/malformed`` (shorter than the overhead), and
    ///   ``FileChunkError/refused`` when the tag does not verify (changed, moved or foreign).
    public func open(_ sealed: [UInt8], index: UInt32, compressed: Bool = false) throws(FileChunkError) -> [UInt8] {
        guard index < chunkCount else { throw .badIndex }
        guard sealed.count <= Self.maximumChunkBytes + Self.overheadBytes else { throw .tooLarge }
        guard sealed.count >= Self.overheadBytes, let box = try? AES.GCM.SealedBox(combined: sealed) else {
            throw .malformed
        }
        guard
            let plaintext = try? AES.GCM.open(
                box, using: key, authenticating: associatedData(index, compressed: compressed))
        else {
            throw .refused
        }
        return Array(plaintext)
    }

    func associatedData(_ index: UInt32, compressed: Bool) -> [UInt8] {
        var data = Array("privatus-file-chunk-v1".utf8) + [compressed ? 1 : 0] + transferID
        withUnsafeBytes(of: index.bigEndian) { data += $0 }
        withUnsafeBytes(of: chunkCount.bigEndian) { data += $0 }
        return data
    }
}

/// Why a chunk could not be sealed or opened. Names no key, id or content.
public enum FileChunkError: Error, Sendable, Hashable, CustomStringConvertible {
    case badParameters
    case badIndex
    case tooLarge
    case malformed
    case refused
    case sealFailed

    public var description: String {
        switch self {
        case .badParameters: "file transfer key, id or chunk count invalid"
        case .badIndex: "chunk index past the last chunk"
        case .tooLarge: "chunk too large"
        case .malformed: "chunk too short to be sealed"
        case .refused: "chunk does not authenticate (changed, moved or from another transfer)"
        case .sealFailed: "chunk could not be sealed"
        }
    }
}
