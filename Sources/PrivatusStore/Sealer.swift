import Crypto
import Foundation
import PrivatusCrypto

/// Seals values at rest: AES-256-GCM with a random nonce, the associated data binding the value to
/// its place — `table ‖ 0x00 ‖ column ‖ 0x00 ‖ row id` — so a sealed value copied to another row
/// or column does not open. Stored as `nonce (12) ‖ ciphertext ‖ tag (16)`.
struct Sealer: Sendable {
    /// The store's sealing key, prepared once (not for every value).
    let context: AESGCMContext

    init(key: SymmetricKey) {
        self.context = AESGCMContext(key: key)
    }

    static func associatedData(table: String, column: String, rowID: [UInt8]) -> [UInt8] {
        Array(table.utf8) + [0] + Array(column.utf8) + [0] + rowID
    }

    func seal(_ value: [UInt8], table: String, column: String, rowID: [UInt8]) throws -> Data {
        context.sealCombined(value, authenticating: Self.associatedData(table: table, column: column, rowID: rowID))
    }

    func open(_ sealed: Data, table: String, column: String, rowID: [UInt8]) throws(StoreError) -> [UInt8] {
        do {
            return try context.openCombined(
                sealed, authenticating: Self.associatedData(table: table, column: column, rowID: rowID))
        } catch {
            throw .damagedRow(table: table)
        }
    }
}

/// Why a storage operation failed. Descriptions name tables, never content or peers.
public enum StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A sealed value does not open: the row was altered or moved, or the key is wrong.
    case damagedRow(table: String)
    /// Sealing failed (a fault of the cryptographic library).
    case sealFailed
    /// The referenced contact or conversation does not exist.
    case notFound
    /// A value is larger than the store accepts.
    case tooLarge
    /// A value is outside what the store accepts (a chunk index past the end, a chunk size or
    /// hash of the wrong size).
    case outOfRange
    /// A record with this id exists already.
    case duplicate

    public var description: String {
        switch self {
        case .damagedRow(let table): "a row of \(table) does not open: damaged or altered"
        case .sealFailed: "sealing a value failed"
        case .notFound: "no such contact, conversation or transfer"
        case .tooLarge: "the value is too large to store"
        case .outOfRange: "a value is outside the range the store accepts"
        case .duplicate: "a record with this id exists already"
        }
    }
}
