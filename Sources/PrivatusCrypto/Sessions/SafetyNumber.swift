import Crypto
import Foundation
import PrivatusCore

/// The 60-digit number two users compare to verify each other's identity, computed as Signal's
/// numeric fingerprint (version 0, 5,200 iterations of SHA-512), over Privatus identity keys.
///
/// For each party: `h = version(2 bytes, 0) ‖ key ‖ id`, then 5,200 times `h = SHA-512(h ‖ key)`;
/// its first 30 bytes give six 5-digit groups (each 5-byte big-endian chunk mod 100,000). `key`
/// is the 32-byte Ed25519 identity key, `id` the 32-byte PeerID. The two 30-digit halves are
/// joined lower first, so both users see the same 60 digits.
public struct SafetyNumber: Sendable, Hashable, CustomStringConvertible {
    public static let iterations = 5200
    static let version: [UInt8] = [0, 0]

    /// The 60 digits.
    public let digits: String
    /// This user's fingerprint and the other's, 32 bytes each, for the scannable form.
    let localFingerprint: [UInt8]
    let remoteFingerprint: [UInt8]

    /// The safety number between `local` and `remote`; the same digits from either side.
    public init(local: IdentityPublicKey, remote: IdentityPublicKey) {
        let mine = Self.fingerprint(local)
        let theirs = Self.fingerprint(remote)
        let (a, b) = (Self.displayDigits(mine), Self.displayDigits(theirs))
        self.digits = a < b ? a + b : b + a
        self.localFingerprint = Array(mine.prefix(32))
        self.remoteFingerprint = Array(theirs.prefix(32))
    }

    /// The digits in twelve groups of five, as shown to users.
    public var description: String {
        stride(from: 0, to: digits.count, by: 5).map { offset in
            let start = digits.index(digits.startIndex, offsetBy: offset)
            return String(digits[start..<digits.index(start, offsetBy: 5)])
        }.joined(separator: " ")
    }

    /// A string for a QR code: `privatus-safety-v1:` ‖ hex(own fingerprint) ‖ `:` ‖ hex(other's).
    public var scannable: String {
        "privatus-safety-v1:" + Hex.encode(localFingerprint) + ":" + Hex.encode(remoteFingerprint)
    }

    /// Whether a code scanned from the other user's screen shows the same pair of identities.
    public func matches(scanned text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "privatus-safety-v1", let theirs = Hex.decodeLowercase(parts[1]),
            let mine = Hex.decodeLowercase(parts[2])
        else { return false }
        return theirs == remoteFingerprint && mine == localFingerprint
    }

    static func fingerprint(_ key: IdentityPublicKey) -> [UInt8] {
        let raw = Array(key.rawRepresentation)
        var hash = version + raw + key.peerID.bytes
        for _ in 0..<iterations {
            var hasher = SHA512()
            hasher.update(data: hash)
            hasher.update(data: raw)
            hash = Array(hasher.finalize())
        }
        return hash
    }

    static func displayDigits(_ hash: [UInt8]) -> String {
        (0..<6).map { chunk in
            let value = hash[(chunk * 5)..<(chunk * 5 + 5)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let text = String(value % 100_000)
            return String(repeating: "0", count: 5 - text.count) + text
        }.joined()
    }
}
