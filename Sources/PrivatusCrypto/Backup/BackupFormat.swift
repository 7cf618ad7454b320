import Crypto
import Foundation
import PrivatusCore

/// The encrypted backup file, version 1 (docs/PROTOCOL.md, "Backup"): a header, then chunks.
///
/// ```
/// header: magic "PRIVATBK" (8) ‖ version u16 (1) ‖ log2 N u8 ‖ r u8 ‖ p u8 ‖ salt (32) ‖ key check (32)
/// chunk:  flags u8 (1 = last) ‖ length u32 ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)
///         associated data = header ‖ chunk index u64 ‖ flags
/// ```
///
/// scrypt(password, salt) → master; HKDF-Expand-SHA256(master, "Privatus-v1/backup/seal" or
/// "…/check", 32). The chunk index and the last-chunk flag in the associated data make a
/// reordered, repeated, dropped or truncated chunk fail.
public enum BackupFormat {
    public static let version: UInt16 = 1
    public static let headerSize = 8 + 2 + 3 + 32 + 32
    /// The most plaintext one chunk carries (1 MiB).
    public static let maximumChunk = 1 << 20
    static let magic = Array("PRIVATBK".utf8)

    /// The keys of one backup file.
    public struct Keys: Sendable {
        let seal: SymmetricKey
        let check: [UInt8]
    }

    /// A header for a new backup, and its keys, at a calibrated cost (or a fixed one for tests).
    public static func newHeader(
        password: String, parameters fixed: ScryptParameters? = nil
    ) throws -> (header: [UInt8], keys: Keys) {
        guard !password.isEmpty else { throw KeystoreError.emptyPassword }
        let salt = Keystore.randomBytes(32)
        let (parameters, master): (ScryptParameters, SymmetricKey)
        if let fixed {
            (parameters, master) = (fixed, try Keystore.derive(password: password, salt: salt, parameters: fixed))
        } else {
            let clock = ContinuousClock()
            (parameters, master) = try ScryptCalibration.calibrate { parameters in
                let start = clock.now
                let key = try Keystore.derive(password: password, salt: salt, parameters: parameters)
                return (key, clock.now - start)
            }
        }
        let keys = expand(master)
        var header = magic
        header.appendBigEndian(version)
        header += [parameters.log2N, parameters.r, parameters.p] + salt + keys.check
        return (header, keys)
    }

    /// Checks a header and derives its keys from the password.
    /// - Throws: ``BackupError/notABackup``, ``BackupError/unsupportedVersion``,
    ///   ``BackupError/damaged`` (parameters out of range), ``BackupError/wrongPassword``.
    public static func keys(header: [UInt8], password: String) throws(BackupError) -> Keys {
        guard header.count == headerSize, Array(header[0..<8]) == magic else { throw .notABackup }
        guard UInt16(header[8]) << 8 | UInt16(header[9]) == version else { throw .unsupportedVersion }
        guard let parameters = try? ScryptParameters(log2N: header[10], r: header[11], p: header[12]) else {
            throw .damaged
        }
        guard
            let master = try? Keystore.derive(password: password, salt: Array(header[13..<45]), parameters: parameters)
        else {
            throw .damaged
        }
        let keys = expand(master)
        guard Keystore.constantTimeEqual(keys.check, Array(header[45..<77])) else { throw .wrongPassword }
        return keys
    }

    /// Seals chunk number `index` (at most ``maximumChunk`` bytes).
    public static func sealChunk(
        _ plaintext: [UInt8], index: UInt64, last: Bool, header: [UInt8], keys: Keys
    ) throws -> [UInt8] {
        precondition(plaintext.count <= maximumChunk)
        let flags: UInt8 = last ? 1 : 0
        let box = try AES.GCM.seal(plaintext, using: keys.seal, authenticating: associatedData(header, index, flags))
        var out: [UInt8] = [flags]
        out.appendBigEndian(UInt32(box.ciphertext.count + 16))
        out += Array(box.nonce) + box.ciphertext + box.tag
        return out
    }

    /// The size of the chunk whose first 5 bytes (flags, length) are `prefix`, checked before
    /// reading it: the nonce, ciphertext and tag that follow.
    public static func chunkBodySize(prefix: [UInt8]) throws(BackupError) -> (last: Bool, size: Int) {
        guard prefix.count == 5, prefix[0] <= 1 else { throw .damaged }
        let length = Int(prefix[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard length >= 16, length <= maximumChunk + 16 else { throw .damaged }
        return (prefix[0] == 1, 12 + length)
    }

    /// Opens chunk number `index` from its body (nonce ‖ ciphertext ‖ tag).
    public static func openChunk(
        body: [UInt8], index: UInt64, last: Bool, header: [UInt8], keys: Keys
    ) throws(BackupError) -> [UInt8] {
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: body[0..<12]), ciphertext: body[12..<(body.count - 16)], tag: body.suffix(16)
            )
            return Array(
                try AES.GCM.open(box, using: keys.seal, authenticating: associatedData(header, index, last ? 1 : 0)))
        } catch {
            throw .damaged
        }
    }

    static func associatedData(_ header: [UInt8], _ index: UInt64, _ flags: UInt8) -> [UInt8] {
        var ad = header
        ad.appendBigEndian(index)
        ad.append(flags)
        return ad
    }

    static func expand(_ master: SymmetricKey) -> Keys {
        let seal = HKDF<SHA256>.expand(
            pseudoRandomKey: master, info: Array("Privatus-v1/backup/seal".utf8), outputByteCount: 32)
        let check = HKDF<SHA256>.expand(
            pseudoRandomKey: master, info: Array("Privatus-v1/backup/check".utf8), outputByteCount: 32)
        return Keys(seal: seal, check: check.withUnsafeBytes { Array($0) })
    }
}

/// Why a backup could not be read. Descriptions name no content.
public enum BackupError: Error, Hashable, Sendable, CustomStringConvertible {
    case notABackup
    case unsupportedVersion
    case wrongPassword
    case damaged
    case truncated

    public var description: String {
        switch self {
        case .notABackup: "the file is not a Privatus backup"
        case .unsupportedVersion: "the backup is of a format version this privatus does not support"
        case .wrongPassword: "wrong password"
        case .damaged: "the backup file is damaged"
        case .truncated: "the backup file is truncated"
        }
    }
}
