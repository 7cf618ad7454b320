import Crypto
import CryptoExtras
import Foundation
import PrivatusCore
import PrivatusCrypto
import Testing

/// The ratchet's AES-256-GCM-SIV gives RFC 8452's bytes and exactly those of swift-crypto's
/// `AES.GCM._SIV`, and opens nothing that was changed.
@Suite struct AESGCMSIVTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let key: String
        let nonce: String
        let associatedData: String
        let plaintext: String
        /// Ciphertext ‖ tag.
        let result: String
        var testDescription: String { "\(plaintext.count / 2) bytes, \(associatedData.count / 2) of AD" }
    }

    /// RFC 8452, Appendix C.2 (AEAD_AES_256_GCM_SIV) and C.3 (counter wrap).
    static let rfc8452: [Vector] = [
        Vector(
            key: "0100000000000000000000000000000000000000000000000000000000000000", nonce: "030000000000000000000000",
            associatedData: "", plaintext: "", result: "07f5f4169bbf55a8400cd47ea6fd400f"),
        Vector(
            key: "0100000000000000000000000000000000000000000000000000000000000000", nonce: "030000000000000000000000",
            associatedData: "", plaintext: "0100000000000000",
            result: "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28"),
        Vector(
            key: "0100000000000000000000000000000000000000000000000000000000000000", nonce: "030000000000000000000000",
            associatedData: "01", plaintext: "0200000000000000000000000000000003000000000000000000000000000000",
            result: "07dad364bfc2b9da89116d7bef6daaaf6f255510aa654f920ac81b94e8bad365aea1bad12702e1965604374aab96dbbc"),
        Vector(
            key: "0100000000000000000000000000000000000000000000000000000000000000", nonce: "030000000000000000000000",
            associatedData: "010000000000000000000000", plaintext: "02000000",
            result: "22b3f4cd1835e517741dfddccfa07fa4661b74cf"),
        Vector(
            key: "e66021d5eb8e4f4066d4adb9c33560e4f46e44bb3da0015c94f7088736864200", nonce: "e0eaf5284d884a0e77d31646",
            associatedData: "", plaintext: "", result: "169fbb2fbf389a995f6390af22228a62"),
        Vector(
            key: "bae8e37fc83441b16034566b7a806c46bb91c3c5aedb64a6c590bc84d1a5e269", nonce: "e4b47801afc0577e34699b9e",
            associatedData: "4fbdc66f14", plaintext: "671fdd", result: "0eaccb93da9bb81333aee0c785b240d319719d"),
        Vector(
            key: "3c535de192eaed3822a2fbbe2ca9dfc88255e14a661b8aa82cc54236093bbc23", nonce: "688089e55540db1872504e1c",
            associatedData: "734320ccc9d9bbbb19cb81b2af4ecbc3e72834321f7aa0f70b7282b4f33df23f167541",
            plaintext: "ced532ce4159b035277d4dfbb7db62968b13cd4eec",
            result: "626660c26ea6612fb17ad91e8e767639edd6c9faee9d6c7029675b89eaf4ba1ded1a286594"),
        Vector(
            key: "0000000000000000000000000000000000000000000000000000000000000000", nonce: "000000000000000000000000",
            associatedData: "", plaintext: "000000000000000000000000000000004db923dc793ee6497c76dcc03a98e108",
            result: "f3f80f2cf0cb2dd9c5984fcda908456cc537703b5ba70324a6793a7bf218d3eaffffffff000000000000000000000000"),
        Vector(
            key: "0000000000000000000000000000000000000000000000000000000000000000", nonce: "000000000000000000000000",
            associatedData: "", plaintext: "eb3640277c7ffd1303c7a542d02d3e4c0000000000000000",
            result: "18ce4f0b8cb4d0cac65fea8f79257b20888e53e72299e56dffffffff000000000000000000000000"),
    ]

    static func bytes(_ hex: String) -> [UInt8] { Hex.decodeLowercase(hex)! }

    @Test(arguments: rfc8452) func sealsAndOpensRFC8452sVectors(vector: Vector) throws {
        let key = Self.bytes(vector.key)
        let nonce = Self.bytes(vector.nonce)
        let associatedData = Self.bytes(vector.associatedData)
        let plaintext = Self.bytes(vector.plaintext)
        let sealed = key.withUnsafeBytes { key in
            nonce.withUnsafeBytes { nonce in
                AESGCMSIV.seal(plaintext, key: key, nonce: nonce, authenticating: associatedData)
            }
        }
        #expect(Hex.encode(sealed) == vector.result)
        let opened = try key.withUnsafeBytes { key in
            try nonce.withUnsafeBytes { nonce in
                try AESGCMSIV.open(sealed, key: key, nonce: nonce, authenticating: associatedData)
            }
        }
        #expect(opened == plaintext)
    }

    @Test(arguments: [0, 1, 15, 16, 17, 100, 1_000, 65_536])
    func sealsTheBytesSwiftCryptoSealsAndRefusesAnyChange(length: Int) throws {
        let key = SymmetricKey(size: .bits256)
        let keyBytes = key.withUnsafeBytes { Array($0) }
        let nonce = (0..<12).map { UInt8($0 &* 7 &+ UInt8(truncatingIfNeeded: length)) }
        let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
        let associatedData = Array("privatus ratchet header".utf8)
        let reference = try AES.GCM._SIV.seal(
            plaintext, using: key, nonce: AES.GCM._SIV.Nonce(data: nonce), authenticating: associatedData)
        func seal() -> [UInt8] {
            keyBytes.withUnsafeBytes { key in
                nonce.withUnsafeBytes { AESGCMSIV.seal(plaintext, key: key, nonce: $0, authenticating: associatedData) }
            }
        }
        func open(_ message: [UInt8], _ associatedData: [UInt8]) throws -> [UInt8] {
            try keyBytes.withUnsafeBytes { key in
                try nonce.withUnsafeBytes { nonce in
                    try AESGCMSIV.open(message, key: key, nonce: nonce, authenticating: associatedData)
                }
            }
        }
        let sealed = seal()
        #expect(sealed == Array(reference.ciphertext) + Array(reference.tag))
        #expect(try open(sealed, associatedData) == plaintext)
        // A changed byte anywhere (a few positions of long messages), other associated data, or a
        // message shorter than a tag: refused.
        for index in Set([0, sealed.count / 2, sealed.count - 17, sealed.count - 1].filter { $0 >= 0 }) {
            var changed = sealed
            changed[index] ^= 0x40
            #expect(throws: AESGCMContextError.authenticationFailure) { try open(changed, associatedData) }
        }
        #expect(throws: AESGCMContextError.authenticationFailure) { try open(sealed, associatedData + [0]) }
        #expect(throws: AESGCMContextError.authenticationFailure) { try open(Array(sealed.prefix(15)), associatedData) }
    }
}
