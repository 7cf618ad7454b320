import Foundation
import NIOCore
import PrivatusWire

extension LinkHandler {
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var input = Self.unwrapInboundIn(data)
        lastRead = context.eventLoop.now
        if partialFrame == nil || completePartialFrame(&input, context: context) {
            readFrames(&input, context: context)
        }
        releaseOpeningBuffer()
        flushOutput(context: context)
    }

    /// Handles every whole frame in `input` in place, and keeps the start of a last one that is
    /// cut short.
    private func readFrames(_ input: inout ByteBuffer, context: ChannelHandlerContext) {
        while !closed, let length = input.getInteger(at: input.readerIndex, as: UInt16.self) {
            guard length > 0 else {
                rejectEmptyFrame(context: context)
                return
            }
            guard input.readableBytes >= 2 + Int(length) else { break }
            input.moveReaderIndex(forwardBy: 2)
            receive(frame: input.readSlice(length: Int(length))!, context: context)
        }
        guard !closed, input.readableBytes > 0 else { return }
        // The frame's length is 16 bits: what is buffered for it is bounded before allocating.
        let length = input.getInteger(at: input.readerIndex, as: UInt16.self).map(Int.init) ?? 0
        var partial = context.channel.allocator.buffer(capacity: 2 + length)
        partial.writeInPieces(&input)
        partialFrame = partial
    }

    /// Adds bytes of `input` to the frame that began in an earlier read; handles the frame once it
    /// is whole. Returns whether `input` has bytes left for the next frames.
    private func completePartialFrame(_ input: inout ByteBuffer, context: ChannelHandlerContext) -> Bool {
        guard var partial = partialFrame.take() else { return true }
        if partial.readableBytes < 2 {
            var byte = input.readSlice(length: min(2 - partial.readableBytes, input.readableBytes))!
            partial.writeBuffer(&byte)
            guard partial.readableBytes == 2 else {
                partialFrame = partial
                return false
            }
        }
        let length = Int(partial.getInteger(at: partial.readerIndex, as: UInt16.self)!)
        guard length > 0 else {
            rejectEmptyFrame(context: context)
            return false
        }
        let missing = 2 + length - partial.readableBytes
        var piece = input.readSlice(length: min(missing, input.readableBytes))!
        partial.writeInPieces(&piece)
        guard partial.readableBytes == 2 + length else {
            partialFrame = partial
            return false
        }
        partial.moveReaderIndex(forwardBy: 2)
        receive(frame: partial, context: context)
        return !closed && input.readableBytes > 0
    }

    private func rejectEmptyFrame(context: ChannelHandlerContext) {
        counters.frameRejected(.malformed)
        fail(.malformedFrame, context: context)
    }

    /// One link frame: a handshake message, or a transport message carrying a stream frame.
    private func receive(frame: ByteBuffer, context: ChannelHandlerContext) {
        guard var session = transport.take() else {
            readHandshakeMessage(frame, context: context)
            return
        }
        let length: Int
        do {
            length = try frame.withUnsafeReadableBytes { message in
                try session.open(message, into: openingBuffer(count: max(0, message.count - NoiseTransport.tagLength)))
            }
        } catch {
            counters.frameRejected(.decryption)
            fail(.decryptionFailed, context: context)
            return
        }
        transport = consume session
        counters.framesIn(bytes: frame.readableBytes)
        receive(streamFrame: UnsafeRawBufferPointer(rebasing: opening![..<length]), context: context)
    }

    /// The first `count` bytes of the buffer frames are opened into, allocated when a read needs
    /// more than it has (reused for every frame of one read, freed after it: an idle link holds
    /// none).
    private func openingBuffer(count: Int) -> UnsafeMutableRawBufferPointer {
        if let opening, opening.count >= count { return UnsafeMutableRawBufferPointer(rebasing: opening[..<count]) }
        opening?.deallocate()
        let buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(count, Self.smallOutputBytes), alignment: MemoryLayout<UInt64>.alignment)
        opening = buffer
        return UnsafeMutableRawBufferPointer(rebasing: buffer[..<count])
    }

    /// Frees the buffer frames were opened into.
    func releaseOpeningBuffer() {
        opening?.deallocate()
        opening = nil
    }

    /// One decrypted stream frame, read from the opening buffer: nothing here keeps a reference
    /// to `bytes` (decoding and reassembly copy what they keep).
    private func receive(streamFrame bytes: UnsafeRawBufferPointer, context: ChannelHandlerContext) {
        let header: StreamFrame.Header
        do {
            header = try StreamFrame.Header(parsing: bytes)
        } catch {
            counters.frameRejected(.malformed)
            fail(.malformedFrame, context: context)
            return
        }
        let index = Int(header.stream.rawValue)
        switch header.kind {
        case .windowUpdate(let credit):
            outbound[index].credit = min(outbound[index].credit + Int(credit), Int(Int32.max))
            pump(context: context)
        case .reset:
            reassemblers[index].discard()
        case .data(let isFinal):
            let payloadBytes = bytes.count - WireLimits.frameHeaderBytes
            if isFinal && reassemblers[index].bufferedBytes == 0 {
                // A whole message in one frame: decoded where it lies.
                guard payloadBytes <= configuration.multiplex.maxMessageBytes else {
                    rejectTooLarge(context: context)
                    return
                }
                grantCredit(stream: index, bytes: payloadBytes, context: context)
                let message = UnsafeRawBufferPointer(rebasing: bytes[WireLimits.frameHeaderBytes...])
                deliver(on: header.stream, context: context) { () throws(WireError) in
                    // A view of the opening buffer, not a copy: the decoder copies what it keeps.
                    let view = message.baseAddress.map {
                        Data(
                            bytesNoCopy: UnsafeMutableRawPointer(mutating: $0), count: message.count, deallocator: .none
                        )
                    }
                    return try WireCodec.decode(
                        data: view ?? Data(), maxBytes: self.configuration.multiplex.maxMessageBytes)
                }
                return
            }
            let message: [UInt8]?
            do {
                message = try reassemblers[index].append(
                    contentsOf: UnsafeRawBufferPointer(rebasing: bytes[WireLimits.frameHeaderBytes...]),
                    isFinal: isFinal)
            } catch {
                if error == .messageTooLarge {
                    rejectTooLarge(context: context)
                } else {
                    counters.frameRejected(.malformed)
                    fail(.malformedFrame, context: context)
                }
                return
            }
            grantCredit(stream: index, bytes: payloadBytes, context: context)
            if let message {
                deliver(on: header.stream, context: context) { () throws(WireError) in
                    try WireCodec.decode(message, maxBytes: self.configuration.multiplex.maxMessageBytes)
                }
            }
        }
    }

    private func rejectTooLarge(context: ChannelHandlerContext) {
        counters.frameRejected(.messageTooLarge)
        fail(.messageTooLarge, context: context)
    }

    /// Returns credit to the peer once a quarter of the window has been consumed. Credit frames
    /// bypass the queues: they are tiny and must never wait behind data.
    private func grantCredit(stream index: Int, bytes: Int, context: ChannelHandlerContext) {
        consumed[index] += bytes
        guard consumed[index] > 0, consumed[index] >= configuration.multiplex.streamWindow / 4 else { return }
        let credit = UInt32(clamping: consumed[index])
        consumed[index] = 0
        plaintext.removeAll(keepingCapacity: true)
        plaintext.append(UInt8(index))
        plaintext.append(StreamFrame.FrameType.windowUpdate.rawValue)
        withUnsafeBytes(of: credit.bigEndian) { plaintext.append(contentsOf: $0) }
        sealPlaintext(context: context)
    }

    /// Decodes one whole message into an envelope: passes it on, or answers it.
    private func deliver(
        on stream: StreamID, context: ChannelHandlerContext, _ decode: () throws(WireError) -> DecodedEnvelope
    ) {
        let decoded: DecodedEnvelope
        do {
            decoded = try decode()
        } catch {
            counters.frameRejected(.malformed)
            send(Envelope(.errorReply(ErrorReply(code: error.replyCode, kind: 0))), on: stream, context: context)
            return
        }
        switch decoded {
        case .message(.ping(let ping)):
            send(Envelope(.pong(Pong(nonce: ping.nonce))), on: .control, context: context)
        case .message(.pong):
            break
        case .message(let body):
            context.fireChannelRead(Self.wrapInboundOut(InboundMessage(stream: stream, body: body)))
        case .unsupportedVersion, .unknownKind:
            counters.frameRejected(.unknownKind)
            if let reply = decoded.errorReply { send(reply, on: stream, context: context) }
        }
    }

    /// Queues a message the link makes itself (pongs, error replies, pings) on `stream`.
    func send(_ envelope: Envelope, on stream: StreamID, context: ChannelHandlerContext) {
        guard let bytes = try? WireCodec.encode(envelope) else { return }
        enqueue(LinkMessage(stream: stream, bytes: bytes), promise: nil, context: context)
        pump(context: context)
    }
}

extension ByteBuffer {
    /// Appends the readable bytes of `other` in pieces of ``LinkHandler/copyPiece`` bytes (see
    /// there for why).
    mutating func writeInPieces(_ other: inout ByteBuffer) {
        while other.readableBytes > 0 {
            var piece = other.readSlice(length: Swift.min(other.readableBytes, LinkHandler.copyPiece))!
            writeBuffer(&piece)
        }
    }
}
