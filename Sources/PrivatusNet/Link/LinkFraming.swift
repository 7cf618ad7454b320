import NIOCore

/// Splits the TCP byte stream into link frames: `length u16 (big-endian) ‖ length bytes`, each one
/// Noise message (docs/PROTOCOL.md, "Wire format").
///
/// The length is read before anything is buffered for the frame, and a 16-bit length cannot name
/// more than 65,535 bytes, Noise's limit; a zero length is refused. The handler that owns this
/// decoder caps its cumulation buffer at ``maximumBufferedBytes``, so a peer that streams bytes
/// faster than frames are consumed cannot grow it.
struct LinkFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// Two whole frames: what the cumulation buffer may hold between two decode passes.
    static let maximumBufferedBytes = 2 * (2 + 65_535)

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) else { return .needMoreData }
        guard length > 0 else { throw LinkError.malformedFrame }
        guard buffer.readableBytes >= 2 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        let frame = buffer.readSlice(length: Int(length))!
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // Bytes left over at the end are half a frame: nothing to deliver.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }

    /// The decoder as a pipeline handler, with its buffer bounded.
    static func handler() -> ByteToMessageHandler<LinkFrameDecoder> {
        ByteToMessageHandler(LinkFrameDecoder(), maximumBufferSize: maximumBufferedBytes)
    }
}

extension ByteBuffer {
    /// Appends one link frame: the length prefix, then `body` (at most 65,535 bytes).
    mutating func writeLinkFrame(_ body: some Collection<UInt8>) {
        precondition(body.count <= Int(UInt16.max), "a link frame carries at most 65,535 bytes")
        writeInteger(UInt16(body.count))
        writeBytes(body)
    }
}
