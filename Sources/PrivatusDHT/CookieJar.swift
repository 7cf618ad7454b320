import Crypto
import Foundation

/// Stateless cookies for the DHT's UDP endpoint, in the manner of DNS Cookies (RFC 7873) and
/// WireGuard's cookie reply: a node hands a source address a cookie it can recompute (an HMAC of
/// the address under a secret that rotates) instead of remembering it. Until a source echoes a
/// valid cookie, the node answers it with nothing larger than its request and checks no
/// signature for it, so a forged source address buys neither amplification nor CPU.
///
/// Pure: the time (milliseconds, any monotonic clock) is passed in. A cookie stays valid for one
/// to two rotation periods (the current secret and the one before).
public struct CookieJar: Sendable {
    public static let cookieBytes = 16

    /// How often the secret changes (ms).
    public let rotation: UInt64
    var current: SymmetricKey
    var previous: SymmetricKey?
    var rotatedAt: UInt64

    public init(now: UInt64, rotation: UInt64 = 120_000) {
        self.rotation = rotation
        current = SymmetricKey(size: .bits256)
        rotatedAt = now
    }

    /// The cookie `source` must echo.
    public func cookie(for source: DHTAddress) -> [UInt8] {
        Self.cookie(for: source, under: current)
    }

    /// Whether `cookie` is one this node handed `source` under the current or the previous secret.
    public func accepts(_ cookie: [UInt8], from source: DHTAddress) -> Bool {
        guard cookie.count == Self.cookieBytes else { return false }
        if Self.equalInConstantTime(cookie, Self.cookie(for: source, under: current)) { return true }
        guard let previous else { return false }
        return Self.equalInConstantTime(cookie, Self.cookie(for: source, under: previous))
    }

    /// Draws a new secret once a rotation period has passed; returns whether it did.
    @discardableResult
    public mutating func rotateIfDue(now: UInt64) -> Bool {
        guard now >= rotatedAt + rotation else { return false }
        // More than two periods idle: the old cookies are stale too.
        previous = now >= rotatedAt + 2 * rotation ? nil : current
        current = SymmetricKey(size: .bits256)
        rotatedAt = now
        return true
    }

    /// The most bytes a reply to a `requestBytes`-byte request from a source that has (or has
    /// not) echoed a valid cookie may have.
    public static func replyLimit(requestBytes: Int, sourceVerified: Bool, maximum: Int) -> Int {
        sourceVerified ? maximum : min(requestBytes, maximum)
    }

    static func cookie(for source: DHTAddress, under key: SymmetricKey) -> [UInt8] {
        var message = source.ip
        message.append(UInt8(source.port >> 8))
        message.append(UInt8(source.port & 0xff))
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: key).prefix(cookieBytes))
    }

    /// Compares without stopping at the first difference (a cookie check must not tell an
    /// attacker how many leading bytes it guessed).
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
