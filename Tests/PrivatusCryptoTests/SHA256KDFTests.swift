import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import Testing

/// The ratchet's HMAC-SHA256 and HKDF-SHA256 give the RFCs' bytes and swift-crypto's, at every
/// length of key, data, salt, info and output the ratchet and its neighbours use.
@Suite struct SHA256KDFTests {
    static func hex(_ text: String) -> [UInt8] { Hex.decodeLowercase(text)! }

    /// RFC 4231, test cases 1, 2 and 6 (a key longer than SHA-256's block).
    @Test func hmacGivesRFC4231sBytes() {
        #expect(
            SHA256KDF.hmac(key: [UInt8](repeating: 0x0b, count: 20), data: Array("Hi There".utf8))
                == Self.hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"))
        #expect(
            SHA256KDF.hmac(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
                == Self.hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
        #expect(
            SHA256KDF.hmac(
                key: [UInt8](repeating: 0xaa, count: 131),
                data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
                == Self.hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"))
    }

    /// RFC 5869, test cases 1 and 3 (no salt and no info).
    @Test func hkdfGivesRFC5869sBytes() {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        #expect(
            SHA256KDF.hkdf(
                inputKeyMaterial: ikm, salt: Array(0x00...0x0c), info: Array(0xf0...0xf9), outputByteCount: 42)
                == Self.hex(
                    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
        #expect(
            SHA256KDF.hkdf(inputKeyMaterial: ikm, salt: [], info: [], outputByteCount: 42)
                == Self.hex(
                    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"))
    }

    static func bytes(_ count: Int, _ seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ Int(seed)) }
    }

    @Test(arguments: [0, 1, 31, 32, 33, 64, 65, 200])
    func hmacGivesSwiftCryptosBytes(keyLength: Int) {
        for dataLength in [0, 1, 32, 100, 1_000] {
            let key = Self.bytes(keyLength, 3)
            let data = Self.bytes(dataLength, 9)
            let reference = Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
            #expect(SHA256KDF.hmac(key: key, data: data) == reference)
        }
    }

    @Test(arguments: [1, 12, 32, 44, 64, 100, 8_160])
    func hkdfGivesSwiftCryptosBytes(outputByteCount: Int) {
        for (ikm, salt, info) in [(32, 32, 23), (32, 0, 0), (0, 32, 24), (96, 13, 200), (1, 1, 1)] {
            let inputKeyMaterial = Self.bytes(ikm, 1)
            let saltBytes = Self.bytes(salt, 2)
            let infoBytes = Self.bytes(info, 5)
            let reference = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: inputKeyMaterial), salt: saltBytes, info: infoBytes,
                outputByteCount: outputByteCount
            ).withUnsafeBytes { Array($0) }
            #expect(
                SHA256KDF.hkdf(
                    inputKeyMaterial: inputKeyMaterial, salt: saltBytes, info: infoBytes,
                    outputByteCount: outputByteCount) == reference)
        }
    }
}
