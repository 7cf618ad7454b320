/// Reads big-endian integers and byte runs from a buffer, failing instead of reading past its end.
public struct ByteReader: Sendable {
    private let bytes: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    /// The number of bytes not yet read.
    public var remaining: Int { bytes.count - offset }

    /// Reads `count` bytes, or returns `nil` (and reads nothing) if fewer remain.
    public mutating func read(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= remaining else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads one byte.
    public mutating func readUInt8() -> UInt8? { read(1)?.first }

    /// Reads a big-endian unsigned 16-bit integer.
    public mutating func readUInt16() -> UInt16? {
        guard let run = read(2) else { return nil }
        return UInt16(run[0]) << 8 | UInt16(run[1])
    }

    /// Reads a big-endian unsigned 32-bit integer.
    public mutating func readUInt32() -> UInt32? {
        guard let run = read(4) else { return nil }
        return run.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Reads a big-endian unsigned 64-bit integer.
    public mutating func readUInt64() -> UInt64? {
        guard let run = read(8) else { return nil }
        return run.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

extension Array where Element == UInt8 {
    /// Appends a big-endian unsigned 16-bit integer.
    public mutating func appendBigEndian(_ value: UInt16) {
        append(UInt8(value >> 8))
        append(UInt8(value & 0xff))
    }

    /// Appends a big-endian unsigned 32-bit integer.
    public mutating func appendBigEndian(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { append(UInt8((value >> UInt32(shift)) & 0xff)) }
    }

    /// Appends a big-endian unsigned 64-bit integer.
    public mutating func appendBigEndian(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { append(UInt8((value >> UInt64(shift)) & 0xff)) }
    }
}
