import PrivatusCore

/// The clear header of a ratchet message, bound as associated data.
///
/// ```
/// version u8 (1) ‖ ratchet public key (32) ‖ previous chain length PN u32 ‖ message number N u32
/// ```
public struct RatchetHeader: Sendable, Hashable {
    public static let version: UInt8 = 1
    public static let encodedSize = 1 + 32 + 4 + 4

    public let ratchetKey: [UInt8]
    public let previousChainLength: UInt32
    public let messageNumber: UInt32

    public init(ratchetKey: [UInt8], previousChainLength: UInt32, messageNumber: UInt32) {
        self.ratchetKey = ratchetKey
        self.previousChainLength = previousChainLength
        self.messageNumber = messageNumber
    }

    public var encoded: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Self.encodedSize)
        append(to: &out)
        return out
    }

    /// Appends the encoded header to `out`.
    public func append(to out: inout [UInt8]) {
        out.append(Self.version)
        out += ratchetKey
        out.appendBigEndian(previousChainLength)
        out.appendBigEndian(messageNumber)
    }
}

/// A ratchet message: header ‖ AES-256-GCM-SIV ciphertext of the padded plaintext ‖ 16-byte tag.
public struct RatchetMessage: Sendable, Hashable {
    /// The largest encoded message accepted (the largest padded plaintext plus header and tag).
    public static let maximumSize = RatchetHeader.encodedSize + Padding.maximumPlaintext + 64 * 1024 + 16

    public let header: RatchetHeader
    public let ciphertext: [UInt8]

    public init(header: RatchetHeader, ciphertext: [UInt8]) {
        self.header = header
        self.ciphertext = ciphertext
    }

    public var encoded: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(RatchetHeader.encodedSize + ciphertext.count)
        header.append(to: &out)
        out += ciphertext
        return out
    }

    /// Parses a message, checking its size before anything else.
    public init(decoding bytes: [UInt8]) throws(SessionError) {
        guard bytes.count <= Self.maximumSize else { throw .malformedMessage }
        guard bytes.count >= RatchetHeader.encodedSize + Padding.smallestBucket + 16 else { throw .malformedMessage }
        var reader = ByteReader(bytes)
        guard reader.readUInt8() == RatchetHeader.version else { throw .unsupportedVersion }
        self.header = RatchetHeader(
            ratchetKey: reader.read(32)!,
            previousChainLength: reader.readUInt32()!,
            messageNumber: reader.readUInt32()!
        )
        self.ciphertext = reader.read(reader.remaining)!
    }
}
