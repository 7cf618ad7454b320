import Crypto
import Foundation
import PrivatusCore

/// Keyed lookups without storing what is looked up: peers and conversations are found by
/// `HMAC-SHA256(index key, kind ‖ 0x00 ‖ value)` truncated to 16 bytes, and message words by
/// `HMAC-SHA256(search key, word)` truncated to 8 bytes (docs/THREAT_MODEL.md says what they leak).
struct BlindIndex: Sendable {
    let indexKey: SymmetricKey
    let searchKey: SymmetricKey

    static let indexSize = 16
    static let tokenSize = 8
    /// Words longer than this are not indexed (they are not words a person types to search).
    static let maximumWordLength = 64

    func peer(_ peerID: PeerID) -> Data {
        mac(indexKey, Array("peer".utf8) + [0] + peerID.bytes, size: Self.indexSize)
    }

    func conversation(with peerID: PeerID) -> Data {
        mac(indexKey, Array("conversation".utf8) + [0] + peerID.bytes, size: Self.indexSize)
    }

    func token(_ normalizedWord: String) -> Data {
        mac(searchKey, Array(normalizedWord.utf8), size: Self.tokenSize)
    }

    /// The distinct whole words of a text, NFKC-normalized and lowercased; no prefixes.
    static func words(of text: String) -> Set<String> {
        let normalized = text.precomposedStringWithCompatibilityMapping.lowercased()
        var words = Set<String>()
        var current = ""
        for scalar in normalized.unicodeScalars {
            if scalar.properties.isAlphabetic || scalar.properties.numericType != nil {
                current.unicodeScalars.append(scalar)
            } else if !current.isEmpty {
                if current.count <= maximumWordLength { words.insert(current) }
                current = ""
            }
        }
        if !current.isEmpty, current.count <= maximumWordLength { words.insert(current) }
        return words
    }

    private func mac(_ key: SymmetricKey, _ bytes: [UInt8], size: Int) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: bytes, using: key).prefix(size))
    }
}
