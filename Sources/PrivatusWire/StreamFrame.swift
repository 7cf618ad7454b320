import PrivatusCore

/// One stream frame: the plaintext of one Noise transport message.
///
/// ```
/// stream id u8 ‖ frame type u8 ‖ body
///   fragment      (0): message bytes, at least one; more fragments of the message follow
///   final         (1): message bytes, possibly none; the last fragment of the message
///   windowUpdate  (2): credit u32, not zero; more bytes the peer may send on the stream
///   reset         (3): error code u16; the stream's partial message is dropped
/// ```
///
/// A frame is at most ``WireLimits/maxFramePlaintext`` bytes. Decoding refuses anything else
/// with a specific ``WireError``, and encoding refuses to produce what decoding would refuse.
public struct StreamFrame: Hashable, Sendable, CustomStringConvertible {
    /// The frame type byte.
    public enum FrameType: UInt8, CaseIterable, Hashable, Sendable {
        case fragment = 0
        case final = 1
        case windowUpdate = 2
        case reset = 3
    }

    /// What a frame carries.
    public enum Body: Hashable, Sendable, CustomStringConvertible {
        /// Bytes of a message that continues in the next data frame of the stream.
        case fragment([UInt8])
        /// The last bytes of a message (all of it when the message fits one frame).
        case final([UInt8])
        /// Flow-control credit, in bytes, granted to the peer on this stream.
        case windowUpdate(credit: UInt32)
        /// The stream's current message is abandoned, for the reason the code gives.
        case reset(code: UInt16)

        /// The type byte of a frame with this body.
        public var type: FrameType {
            switch self {
            case .fragment: .fragment
            case .final: .final
            case .windowUpdate: .windowUpdate
            case .reset: .reset
            }
        }

        /// The type and the size: never the message bytes.
        public var description: String {
            switch self {
            case .fragment(let bytes): "fragment (\(bytes.count) bytes)"
            case .final(let bytes): "final (\(bytes.count) bytes)"
            case .windowUpdate(let credit): "window update (+\(credit))"
            case .reset(let code): "reset (code \(code))"
            }
        }
    }

    /// The stream the frame belongs to.
    public var stream: StreamID
    /// What the frame carries.
    public var body: Body

    public init(stream: StreamID, body: Body) {
        self.stream = stream
        self.body = body
    }

    /// The stream, the type and the size: never the message bytes.
    public var description: String { "\(stream) \(body)" }

    /// The number of bytes ``encoded()`` produces.
    public var encodedCount: Int {
        switch body {
        case .fragment(let bytes), .final(let bytes): WireLimits.frameHeaderBytes + bytes.count
        case .windowUpdate: WireLimits.frameHeaderBytes + 4
        case .reset: WireLimits.frameHeaderBytes + 2
        }
    }

    /// Encodes the frame.
    ///
    /// - Throws: ``WireError/frameTooLarge`` when the frame would exceed
    ///   ``WireLimits/maxFramePlaintext``; ``WireError/emptyFragment`` for a `fragment` without
    ///   bytes; ``WireError/zeroWindowUpdate`` for a credit of zero.
    public func encoded() throws(WireError) -> [UInt8] {
        let count = encodedCount
        guard count <= WireLimits.maxFramePlaintext else { throw .frameTooLarge }
        var out: [UInt8] = []
        out.reserveCapacity(count)
        out.append(stream.rawValue)
        out.append(body.type.rawValue)
        switch body {
        case .fragment(let bytes):
            guard !bytes.isEmpty else { throw .emptyFragment }
            out.append(contentsOf: bytes)
        case .final(let bytes):
            out.append(contentsOf: bytes)
        case .windowUpdate(let credit):
            guard credit != 0 else { throw .zeroWindowUpdate }
            out.appendBigEndian(credit)
        case .reset(let code):
            out.appendBigEndian(code)
        }
        return out
    }

    /// Decodes one frame, which must span `bytes` exactly.
    ///
    /// The size is checked first, then the header, then the body (the rules of
    /// ``StreamFrame/Header/init(parsing:)``).
    ///
    /// - Throws: ``WireError/emptyFrame``, ``WireError/frameTooLarge``,
    ///   ``WireError/truncatedFrame`` (header or fixed-size body cut short),
    ///   ``WireError/unknownStream``, ``WireError/unknownFrameType``,
    ///   ``WireError/emptyFragment``, ``WireError/zeroWindowUpdate``, or
    ///   ``WireError/trailingBytes`` (bytes after a fixed-size body).
    public init(decoding bytes: [UInt8]) throws(WireError) {
        let parsed = bytes.withUnsafeBytes { raw in Result { () throws(WireError) in try Header(parsing: raw) } }
        let header = try parsed.get()
        let body: Body
        switch header.kind {
        case .data(let isFinal):
            let payload = Array(bytes[WireLimits.frameHeaderBytes...])
            body = isFinal ? .final(payload) : .fragment(payload)
        case .windowUpdate(let credit):
            body = .windowUpdate(credit: credit)
        case .reset(let code):
            body = .reset(code: code)
        }
        self.init(stream: header.stream, body: body)
    }
}

extension StreamFrame {
    /// A decoded frame whose message bytes stay where they are: for a link that reads frames
    /// out of its receive buffer without copying them. A data frame's bytes are everything after
    /// the ``WireLimits/frameHeaderBytes``-byte header.
    public struct Header: Hashable, Sendable {
        /// What the frame is, with its fixed-size body.
        public enum Kind: Hashable, Sendable {
            /// A `fragment` (`isFinal` false) or `final` frame.
            case data(isFinal: Bool)
            case windowUpdate(credit: UInt32)
            case reset(code: UInt16)
        }

        public var stream: StreamID
        public var kind: Kind

        /// Checks one whole frame, as ``StreamFrame/init(decoding:)`` does, without copying it.
        ///
        /// - Throws: the errors of ``StreamFrame/init(decoding:)``, in the same order.
        public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
            guard !bytes.isEmpty else { throw .emptyFrame }
            guard bytes.count <= WireLimits.maxFramePlaintext else { throw .frameTooLarge }
            guard bytes.count >= WireLimits.frameHeaderBytes else { throw .truncatedFrame }
            guard let stream = StreamID(rawValue: bytes[0]) else { throw .unknownStream }
            guard let type = FrameType(rawValue: bytes[1]) else { throw .unknownFrameType }
            let body = bytes.count - WireLimits.frameHeaderBytes
            switch type {
            case .fragment:
                guard body > 0 else { throw .emptyFragment }
                kind = .data(isFinal: false)
            case .final:
                kind = .data(isFinal: true)
            case .windowUpdate:
                guard body >= 4 else { throw .truncatedFrame }
                let credit = UInt32(bytes[2]) << 24 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 8 | UInt32(bytes[5])
                guard credit != 0 else { throw .zeroWindowUpdate }
                guard body == 4 else { throw .trailingBytes }
                kind = .windowUpdate(credit: credit)
            case .reset:
                guard body >= 2 else { throw .truncatedFrame }
                guard body == 2 else { throw .trailingBytes }
                kind = .reset(code: UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
            }
            self.stream = stream
        }
    }
}
