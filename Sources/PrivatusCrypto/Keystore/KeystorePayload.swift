import Crypto
import Foundation
import PrivatusCore

/// The plaintext sealed inside the keystore: a list of `tag u8 ‖ length u16 ‖ value` fields, each
/// tag exactly once, in this order.
enum KeystorePayload {
    enum Tag: UInt8, CaseIterable {
        case identitySeed = 1
        case identityDH = 2
        case noiseStatic = 3
        case databaseKey = 4
        case name = 5
    }

    static func encode(_ contents: KeystoreContents) -> [UInt8] {
        var out: [UInt8] = []
        func field(_ tag: Tag, _ value: some Sequence<UInt8>) {
            let bytes = Array(value)
            out.append(tag.rawValue)
            out.appendBigEndian(UInt16(bytes.count))
            out += bytes
        }
        field(.identitySeed, contents.keys.identity.seed)
        field(.identityDH, contents.keys.identityDH.rawRepresentation)
        field(.noiseStatic, contents.keys.noiseStatic.rawRepresentation)
        contents.keys.databaseKey.withUnsafeBytes { field(.databaseKey, $0) }
        field(.name, contents.name.utf8)
        return out
    }

    static func decode(_ bytes: [UInt8]) throws(KeystoreError) -> KeystoreContents {
        var reader = ByteReader(bytes)
        var values: [Tag: [UInt8]] = [:]
        for expected in Tag.allCases {
            guard let raw = reader.readUInt8(), raw == expected.rawValue, let length = reader.readUInt16(),
                let value = reader.read(Int(length))
            else {
                throw KeystoreError.damaged
            }
            values[expected] = value
        }
        guard reader.remaining == 0, values[.databaseKey]?.count == 32,
            let name = String(validating: values[.name]!, as: UTF8.self), (try? Keystore.validateName(name)) != nil
        else {
            throw KeystoreError.damaged
        }
        do {
            let keys = IdentityKeys(
                identity: try IdentityKey(seed: values[.identitySeed]!),
                identityDH: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: values[.identityDH]!),
                noiseStatic: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: values[.noiseStatic]!),
                databaseKey: SymmetricKey(data: values[.databaseKey]!)
            )
            return KeystoreContents(keys: keys, name: name)
        } catch {
            throw KeystoreError.damaged
        }
    }
}
