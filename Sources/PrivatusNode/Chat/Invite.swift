import NIOCore
import PrivatusCore

/// An invite: the PeerID to add and where its node listens,
/// `privatus://<peerid>?a=<host:port>&a=…` (docs/CLI.md, "Invites"). A bare PeerID is an invite
/// without addresses.
public struct Invite: Sendable, Hashable, CustomStringConvertible {
    /// The longest invite accepted, in bytes.
    public static let maximumBytes = 1024
    static let scheme = "privatus://"

    public let peerID: PeerID
    /// "host:port", IPv6 hosts in brackets; at most ``Contact/maximumAddresses``.
    public let addresses: [String]

    public init(peerID: PeerID, addresses: [String]) {
        self.peerID = peerID
        self.addresses = Array(addresses.prefix(8))
    }

    /// Parses an invite or a bare PeerID.
    /// - Throws: ``InviteError`` naming what is wrong (never echoing the input).
    public init(parsing text: String) throws(InviteError) {
        guard text.utf8.count <= Self.maximumBytes else { throw .tooLong }
        var rest = Substring(text.trimmingWhitespace())
        if rest.hasPrefix(Self.scheme) { rest = rest.dropFirst(Self.scheme.count) }
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let peerPart = parts.first, let peer = try? PeerID(parsing: peerPart) else { throw .badPeerID }
        var addresses: [String] = []
        if parts.count == 2 {
            for item in parts[1].split(separator: "&") {
                guard item.hasPrefix("a=") else { throw .badAddress }
                let address = String(item.dropFirst(2))
                guard HostPort(parsing: address) != nil else { throw .badAddress }
                guard addresses.count < 8 else { throw .tooManyAddresses }
                addresses.append(address)
            }
        }
        self.init(peerID: peer, addresses: addresses)
    }

    public var description: String {
        Self.scheme + peerID.hex + (addresses.isEmpty ? "" : "?" + addresses.map { "a=" + $0 }.joined(separator: "&"))
    }
}

/// Why an invite was refused.
public enum InviteError: Error, Sendable, Hashable, CustomStringConvertible {
    case tooLong
    case badPeerID
    case badAddress
    case tooManyAddresses

    public var description: String {
        switch self {
        case .tooLong: "the invite is too long"
        case .badPeerID: "the invite does not start with a PeerID (64 hex digits)"
        case .badAddress: "an address in the invite is not host:port (IPv6 in brackets)"
        case .tooManyAddresses: "the invite has more than 8 addresses"
        }
    }
}

/// A "host:port" address: an IPv4 literal, a bracketed IPv6 literal or a host name, and a port
/// in 1…65535. At most 64 bytes (what a link hello carries).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init?(parsing text: some StringProtocol) {
        guard !text.isEmpty, text.utf8.count <= 64, let colon = text.lastIndex(of: ":") else { return nil }
        var host = text[..<colon]
        guard let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = host.dropFirst().dropLast()
            guard host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            guard !host.isEmpty, !host.contains(":"),
                host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") })
            else { return nil }
        }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The address, when the host is an IP literal (nil for a host name).
    public var socketAddress: SocketAddress? { try? SocketAddress(ipAddress: host, port: port) }
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}
