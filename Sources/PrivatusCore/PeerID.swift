import Crypto
import Foundation

/// A peer's identity as others see it: SHA-256 of its Ed25519 identity public key.
///
/// Its text form is exactly 64 lowercase hexadecimal characters; ``init(parsing:)`` rejects
/// anything else (uppercase, whitespace, prefixes, other lengths).
///
/// `description` is deliberately redacted so that a PeerID interpolated into a log line or an
/// error message does not reveal who it is; use ``hex`` where the full identifier is meant.
public struct PeerID: Hashable, Sendable, Comparable {
    /// The number of bytes in a PeerID.
    public static let byteCount = 32

    /// The 32 bytes of the digest.
    public let bytes: [UInt8]

    /// Derives the PeerID of an Ed25519 identity public key given in its 32-byte raw form.
    public init(identityPublicKey rawRepresentation: some DataProtocol) {
        self.bytes = Array(SHA256.hash(data: rawRepresentation))
    }

    /// Parses the 64-character lowercase hexadecimal form.
    /// - Throws: ``PeerIDError/malformed`` for anything else.
    public init(parsing text: some StringProtocol) throws(PeerIDError) {
        guard text.utf8.count == 2 * Self.byteCount, let bytes = Hex.decodeLowercase(text) else {
            throw PeerIDError.malformed
        }
        self.bytes = bytes
    }

    /// A PeerID from its 32 bytes.
    /// - Throws: ``PeerIDError/malformed`` for any other length.
    public init(bytes: [UInt8]) throws(PeerIDError) {
        guard bytes.count == Self.byteCount else { throw PeerIDError.malformed }
        self.bytes = bytes
    }

    /// The 64 lowercase hexadecimal characters.
    public var hex: String { Hex.encode(bytes) }

    /// The PeerID in groups of four hex digits separated by spaces, for reading aloud.
    public var fingerprint: String {
        let text = Array(hex)
        return stride(from: 0, to: text.count, by: 4)
            .map { String(text[$0..<min($0 + 4, text.count)]) }
            .joined(separator: " ")
    }

    public static func < (lhs: PeerID, rhs: PeerID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

extension PeerID: CustomStringConvertible {
    /// A redacted form that never reveals the identifier.
    public var description: String { "PeerID(redacted)" }
}

extension PeerID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a PeerID")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// Why a text is not a PeerID.
public enum PeerIDError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not exactly 64 lowercase hexadecimal characters.
    case malformed

    public var description: String {
        switch self {
        case .malformed: "a PeerID is exactly 64 lowercase hexadecimal characters"
        }
    }
}
