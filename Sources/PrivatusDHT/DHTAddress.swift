/// Where a DHT node answers: an IP address (4 or 16 bytes) and a UDP port.
public struct DHTAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 (IPv6), network order.
    public let ip: [UInt8]
    public let port: UInt16

    /// Refuses anything but 4 or 16 address bytes. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, what a dual-stack socket reports) is kept as the IPv4 address it is.
    public init?(ip: [UInt8], port: UInt16) {
        guard ip.count == 4 || ip.count == 16 else { return nil }
        if ip.count == 16, ip.prefix(10).allSatisfy({ $0 == 0 }), ip[10] == 0xff, ip[11] == 0xff {
            self.ip = Array(ip.suffix(4))
        } else {
            self.ip = ip
        }
        self.port = port
    }

    /// An IPv4 address `a.b.c.d:port`.
    public init(ipv4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) {
        ip = [a, b, c, d]
        self.port = port
    }

    public var isIPv4: Bool { ip.count == 4 }

    /// 127.0.0.0/8, or ::1.
    public var isLoopback: Bool {
        isIPv4 ? ip[0] == 127 : ip == [UInt8](repeating: 0, count: 15) + [1]
    }

    /// Whether datagrams may be sent to it: not unspecified, broadcast, multicast or reserved.
    public var isUnicast: Bool {
        if isIPv4 { return ip[0] != 0 && ip[0] < 224 && port != 0 }
        return ip != [UInt8](repeating: 0, count: 16) && ip[0] != 0xff && port != 0
    }

    /// The network a routing-table bucket counts entries per: the /24 of an IPv4 address, the /48
    /// of an IPv6 one (one operator rarely gets more, so many IDs from one network are one
    /// operator's).
    public var subnet: [UInt8] { Array(ip.prefix(isIPv4 ? 3 : 6)) }

    public var description: String {
        if isIPv4 { return ip.map(String.init).joined(separator: ".") + ":\(port)" }
        let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(ip[$0]) << 8 | UInt16(ip[$0 + 1]), radix: 16) }
        return "[" + groups.joined(separator: ":") + "]:\(port)"
    }
}

/// A DHT node as others know it: its identifier and where it answers.
public struct DHTPeer: Hashable, Sendable, CustomStringConvertible {
    public var id: DHTNodeID
    public var address: DHTAddress

    public init(id: DHTNodeID, address: DHTAddress) {
        self.id = id
        self.address = address
    }

    public var description: String { "\(id)@\(address)" }
}
