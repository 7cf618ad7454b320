import Crypto
import CryptoExtras
import Foundation
import PrivatusCore

/// What the keystore seals: the profile's private keys, its database key and its display name.
public struct KeystoreContents: Sendable {
    public let keys: IdentityKeys
    public let name: String

    public init(keys: IdentityKeys, name: String) {
        self.keys = keys
        self.name = name
    }
}

/// The keystore file format, version 1 (docs/PROTOCOL.md, "Keystore").
///
/// ```
/// magic "PRIVATKS" (8) ‖ version u16 ‖ kdf u8 (1 = scrypt) ‖ log2 N u8 ‖ r u8 ‖ p u8
/// ‖ salt (32) ‖ key check (32) ‖ nonce (12) ‖ ciphertext length u32
/// ‖ ciphertext ‖ GCM tag (16) ‖ SHA-256 of everything before it (32)
/// ```
///
/// scrypt(password, salt) gives a 32-byte master key; HKDF-SHA256 expands it into the AES-256-GCM
/// sealing key and the key-check value. All bytes before the ciphertext are the associated data.
/// The unkeyed digest at the end tells accidental damage from a wrong password: a file whose
/// digest holds but whose key check fails was opened with the wrong password.
public enum Keystore {
    /// The format version this code writes and reads.
    public static let formatVersion: UInt16 = 1
    /// The largest keystore file accepted, checked before reading it.
    public static let maximumFileSize = 64 * 1024
    /// The longest display name, in UTF-8 bytes.
    public static let maximumNameBytes = 256

    static let magic = Array("PRIVATKS".utf8)
    static let kdfScrypt: UInt8 = 1
    static let saltSize = 32
    static let checkSize = 32
    static let nonceSize = 12
    static let tagSize = 16
    static let digestSize = 32
    /// magic, version, kdf, log2N, r, p, salt, check, nonce, length.
    static let headerSize = 8 + 2 + 4 + saltSize + checkSize + nonceSize + 4
    static let sealInfo = Array("Privatus-v1/keystore/seal".utf8)
    static let checkInfo = Array("Privatus-v1/keystore/check".utf8)

    /// Seals `contents` at a fixed cost.
    /// - Throws: ``KeystoreError/emptyPassword``, ``KeystoreError/invalidName``.
    public static func seal(
        _ contents: KeystoreContents, password: String, parameters: ScryptParameters
    ) throws -> [UInt8] {
        try validate(contents: contents, password: password)
        let salt = randomBytes(saltSize)
        let master = try derive(password: password, salt: salt, parameters: parameters)
        return try assemble(contents, parameters: parameters, salt: salt, master: master)
    }

    /// Seals `contents` with a cost calibrated on this machine (``ScryptCalibration``).
    public static func sealCalibrated(
        _ contents: KeystoreContents, password: String
    ) throws -> (bytes: [UInt8], parameters: ScryptParameters) {
        try validate(contents: contents, password: password)
        let salt = randomBytes(saltSize)
        let clock = ContinuousClock()
        let (parameters, master) = try ScryptCalibration.calibrate { parameters in
            let start = clock.now
            let key = try derive(password: password, salt: salt, parameters: parameters)
            return (key, clock.now - start)
        }
        return (try assemble(contents, parameters: parameters, salt: salt, master: master), parameters)
    }

    /// The parameters a keystore was sealed with, read and checked without deriving anything.
    public static func parameters(of bytes: [UInt8]) throws(KeystoreError) -> ScryptParameters {
        try parse(bytes).parameters
    }

    /// Opens a keystore.
    /// - Throws: a ``KeystoreError`` saying which check failed; the parameters are checked before
    ///   any derivation.
    public static func open(_ bytes: [UInt8], password: String) throws(KeystoreError) -> KeystoreContents {
        let file = try parse(bytes)
        let master: SymmetricKey
        do {
            master = try derive(password: password, salt: file.salt, parameters: file.parameters)
        } catch {
            throw KeystoreError.derivationFailed
        }
        let (sealKey, check) = expand(master)
        guard constantTimeEqual(check, file.check) else { throw KeystoreError.wrongPassword }
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: file.nonce),
                ciphertext: file.ciphertext,
                tag: file.tag
            )
            plaintext = try AES.GCM.open(box, using: sealKey, authenticating: file.associatedData)
        } catch {
            throw KeystoreError.damaged
        }
        return try KeystorePayload.decode(Array(plaintext))
    }

    // MARK: - Internals

    struct ParsedFile {
        var parameters: ScryptParameters
        var salt: [UInt8]
        var check: [UInt8]
        var nonce: [UInt8]
        var ciphertext: [UInt8]
        var tag: [UInt8]
        var associatedData: [UInt8]
    }

    static func parse(_ bytes: [UInt8]) throws(KeystoreError) -> ParsedFile {
        guard bytes.count <= maximumFileSize else { throw KeystoreError.tooLarge }
        guard bytes.count >= magic.count + 2, Array(bytes[0..<magic.count]) == magic else {
            throw KeystoreError.notAKeystore
        }
        var reader = ByteReader(bytes)
        _ = reader.read(magic.count)
        guard let version = reader.readUInt16() else { throw KeystoreError.truncated }
        guard version == formatVersion else { throw KeystoreError.unsupportedVersion(version) }
        guard bytes.count >= headerSize else { throw KeystoreError.truncated }
        let kdf = reader.readUInt8()!
        let log2N = reader.readUInt8()!
        let r = reader.readUInt8()!
        let p = reader.readUInt8()!
        let salt = reader.read(saltSize)!
        let check = reader.read(checkSize)!
        let nonce = reader.read(nonceSize)!
        let length = Int(reader.readUInt32()!)
        let expected = headerSize + length + tagSize + digestSize
        guard length <= maximumFileSize, bytes.count >= expected else { throw KeystoreError.truncated }
        guard bytes.count == expected else { throw KeystoreError.damaged }
        let body = bytes[0..<(expected - digestSize)]
        guard constantTimeEqual(Array(SHA256.hash(data: body)), Array(bytes[(expected - digestSize)...])) else {
            throw KeystoreError.damaged
        }
        guard kdf == kdfScrypt else { throw KeystoreError.parametersOutOfRange }
        let parameters = try ScryptParameters(log2N: log2N, r: r, p: p)
        let ciphertext = reader.read(length)!
        let tag = reader.read(tagSize)!
        return ParsedFile(
            parameters: parameters,
            salt: salt,
            check: check,
            nonce: nonce,
            ciphertext: ciphertext,
            tag: tag,
            associatedData: Array(bytes[0..<headerSize])
        )
    }

    static func validate(contents: KeystoreContents, password: String) throws(KeystoreError) {
        guard !password.isEmpty else { throw KeystoreError.emptyPassword }
        try validateName(contents.name)
    }

    /// Checks a display name: 1 to 64 characters, at most ``maximumNameBytes`` bytes, no control
    /// characters.
    public static func validateName(_ name: String) throws(KeystoreError) {
        guard !name.isEmpty, name.count <= 64, name.utf8.count <= maximumNameBytes,
            !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw KeystoreError.invalidName
        }
    }

    static func derive(password: String, salt: [UInt8], parameters: ScryptParameters) throws -> SymmetricKey {
        try KDF.Scrypt.deriveKey(
            from: passwordBytes(password),
            salt: salt,
            outputByteCount: 32,
            rounds: parameters.n,
            blockSize: Int(parameters.r),
            parallelism: Int(parameters.p)
        )
    }

    /// The password as NFC-normalized UTF-8, so the same typed password gives the same bytes
    /// whatever the input method composed.
    static func passwordBytes(_ password: String) -> [UInt8] {
        Array(password.precomposedStringWithCanonicalMapping.utf8)
    }

    static func expand(_ master: SymmetricKey) -> (seal: SymmetricKey, check: [UInt8]) {
        let seal = HKDF<SHA256>.expand(pseudoRandomKey: master, info: sealInfo, outputByteCount: 32)
        let check = HKDF<SHA256>.expand(pseudoRandomKey: master, info: checkInfo, outputByteCount: checkSize)
        return (seal, check.withUnsafeBytes { Array($0) })
    }

    static func assemble(
        _ contents: KeystoreContents, parameters: ScryptParameters, salt: [UInt8], master: SymmetricKey
    ) throws -> [UInt8] {
        let (sealKey, check) = expand(master)
        let payload = KeystorePayload.encode(contents)
        let nonce = AES.GCM.Nonce()
        var header = magic
        header.appendBigEndian(formatVersion)
        header += [kdfScrypt, parameters.log2N, parameters.r, parameters.p]
        header += salt
        header += check
        header += Array(nonce)
        header.appendBigEndian(UInt32(payload.count))
        let box = try AES.GCM.seal(payload, using: sealKey, nonce: nonce, authenticating: header)
        var file = header
        file += box.ciphertext
        file += box.tag
        file += SHA256.hash(data: file)
        return file
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        SymmetricKey(size: SymmetricKeySize(bitCount: count * 8)).withUnsafeBytes { Array($0) }
    }

    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}
