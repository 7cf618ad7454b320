import Crypto
import Foundation
import PrivatusCore
import Synchronization

/// Keyed lookups without storing what is looked up: peers and conversations are found by
/// `HMAC-SHA256(index key, kind ‖ 0x00 ‖ value)` truncated to 16 bytes, and message words by
/// `HMAC-SHA256(search key, word)` truncated to 8 bytes (docs/THREAT_MODEL.md says what they leak).
struct BlindIndex: Sendable {
    let indexKey: SymmetricKey
    let searchKey: SymmetricKey
    /// The peer and conversation values already computed: every store call about a peer needs
    /// one (several per message sent or received), and each is an HMAC.
    private let known = Known()

    private final class Known: Sendable {
        let values = Mutex<[Kind: [PeerID: Data]]>([:])
    }

    static let indexSize = 16
    static let tokenSize = 8
    /// Words longer than this are not indexed (they are not words a person types to search).
    static let maximumWordLength = 64
    /// Values kept per kind; past it the kind's values are dropped and computed again.
    static let maximumKnown = 4_096

    fileprivate enum Kind: Hashable, Sendable {
        case peer, conversation

        var label: [UInt8] {
            switch self {
            case .peer: Array("peer".utf8)
            case .conversation: Array("conversation".utf8)
            }
        }
    }

    init(indexKey: SymmetricKey, searchKey: SymmetricKey) {
        self.indexKey = indexKey
        self.searchKey = searchKey
    }

    func peer(_ peerID: PeerID) -> Data {
        value(.peer, of: peerID)
    }

    func conversation(with peerID: PeerID) -> Data {
        value(.conversation, of: peerID)
    }

    private func value(_ kind: Kind, of peerID: PeerID) -> Data {
        if let value = known.values.withLock({ $0[kind]?[peerID] }) { return value }
        let value = mac(indexKey, kind.label + [0] + peerID.bytes, size: Self.indexSize)
        known.values.withLock { known in
            if known[kind, default: [:]].count >= Self.maximumKnown { known[kind] = [:] }
            known[kind, default: [:]][peerID] = value
        }
        return value
    }

    func token(_ normalizedWord: String) -> Data {
        mac(searchKey, Array(normalizedWord.utf8), size: Self.tokenSize)
    }

    /// The distinct whole words of a text, NFKC-normalized and lowercased; no prefixes.
    static func words(of text: String) -> Set<String> {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return asciiWords(of: text) }
        return unicodeWords(of: text)
    }

    /// ``words(of:)`` for ASCII text, without Foundation's normalization (the identity on ASCII)
    /// or Unicode property look-ups: its letters and digits are exactly the ASCII scalars that
    /// are alphabetic or numeric.
    static func asciiWords(of text: String) -> Set<String> {
        var words = Set<String>()
        var current: [UInt8] = []
        func end() {
            if !current.isEmpty, current.count <= maximumWordLength {
                words.insert(String(decoding: current, as: UTF8.self))
            }
            current.removeAll(keepingCapacity: true)
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): current.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): current.append(byte + 32)
            default: end()
            }
        }
        end()
        return words
    }

    static func unicodeWords(of text: String) -> Set<String> {
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
