import Foundation
import NIOCore
import PrivatusWire

extension LinkHandler {
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        enqueue(Self.unwrapOutboundIn(data), promise: promise, context: context)
    }

    func flush(context: ChannelHandlerContext) {
        pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Queues a message on its stream, or refuses it (every refusal lets a gated message's bytes
    /// out of the gate again).
    func enqueue(_ message: LinkMessage, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        let count = message.count
        let gatedBytes = message.gated ? count : 0
        guard !closed else {
            gate.leave(gatedBytes)
            promise?.fail(LinkError.closed)
            return
        }
        guard count <= configuration.multiplex.maxMessageBytes else {
            gate.leave(gatedBytes)
            promise?.fail(LinkError.messageTooLarge)
            return
        }
        guard queuedBytes + count <= configuration.multiplex.maxQueuedBytes else {
            gate.leave(gatedBytes)
            promise?.fail(LinkError.slowReader)
            counters.frameRejected(.slowReader)
            fail(.slowReader, context: context)
            return
        }
        queuedBytes += count
        counters.queuedBytes.increment(by: Double(count))
        outbound[Int(message.stream.rawValue)].queue.append(
            Pending(storage: message.storage, headroom: message.headroom, promise: promise, gatedBytes: gatedBytes))
    }

    /// Seals frames while the socket takes them, most urgent stream first.
    func pump(context: ChannelHandlerContext) {
        guard !closed, transport != nil else { return }
        var wrote = false
        while context.channel.isWritable, let index = nextStream() {
            // Taken out of the queue while its frame is sealed, so that its bytes are not shared
            // (a frame sealed in place writes its header into them).
            var pending = outbound[index].queue.removeFirst()
            let end = min(pending.count, pending.offset + WireLimits.maxFragmentPayload)
            let payload = end - pending.offset
            let isFinal = end == pending.count
            outbound[index].credit -= payload
            queuedBytes -= payload
            counters.queuedBytes.decrement(by: Double(payload))
            let type = isFinal ? StreamFrame.FrameType.final.rawValue : StreamFrame.FrameType.fragment.rawValue
            let sealed = seal(&pending, to: end, stream: UInt8(index), type: type, context: context)
            // A failed seal, or a channel that closed under the write, has failed the queues.
            guard sealed, !closed else {
                pending.promise?.fail(LinkError.closed)
                return
            }
            wrote = true
            if isFinal {
                if let promise = pending.promise { completeWithOutput(promise) }
                if pending.gatedBytes > 0 { gate.leave(pending.gatedBytes) }
            } else {
                pending.offset = end
                outbound[index].queue.prepend(pending)
            }
        }
        if wrote { flushOutput(context: context) }
        watchForStall(context: context, progressed: wrote)
        completeDrains(context: context)
        if outbound.allSatisfy({ $0.queue.isEmpty }) { releaseSealingBuffers() }
    }

    /// Seals the next frame of `pending`, its bytes up to `end`. A message encoded behind a frame
    /// header is sealed from its own bytes: the header goes into the two bytes before the frame's
    /// payload (the headroom, or the end of the frame sealed before it). The array is written to,
    /// so while another reference to it exists (today the sender's, until its `writeAndFlush`
    /// returns) Swift copies the whole message once, on its first frame. Any other message is
    /// copied into ``plaintext`` behind the header frame by frame.
    private func seal(
        _ pending: inout Pending, to end: Int, stream: UInt8, type: UInt8, context: ChannelHandlerContext
    ) -> Bool {
        let start = pending.headroom + pending.offset
        if pending.headroom > 0 {
            let header = WireLimits.frameHeaderBytes
            return pending.storage.withUnsafeMutableBytes { raw in
                raw[start - header] = stream
                raw[start - header + 1] = type
                return sealFrame(
                    UnsafeRawBufferPointer(rebasing: raw[(start - header)..<(pending.headroom + end)]), context: context
                )
            }
        }
        plaintext.removeAll(keepingCapacity: true)
        plaintext.reserveCapacity(WireLimits.frameHeaderBytes + end - pending.offset)
        plaintext.append(stream)
        plaintext.append(type)
        var copied = start
        while copied < end {
            let stop = min(end, copied + Self.copyPiece)
            plaintext.append(contentsOf: pending.storage[copied..<stop])
            copied = stop
        }
        return sealPlaintext(context: context)
    }

    /// Between bursts a link keeps no more than a small plaintext buffer: a link that has sent
    /// one bulk message must not hold 64 KiB while idle.
    private func releaseSealingBuffers() {
        if plaintext.capacity > Self.idlePlaintextCapacity { plaintext = [] }
    }

    /// The most urgent stream with a frame to send and credit to send it.
    private func nextStream() -> Int? {
        for index in Self.priority where !outbound[index].queue.isEmpty && outbound[index].credit > 0 {
            return index
        }
        return nil
    }

    // MARK: - Sealing

    /// Encrypts ``plaintext`` (one stream frame) into the output as one link frame. Returns
    /// false, having closed the link, when the session cannot encrypt (its nonces are spent, or
    /// a frame too large: a bug).
    @discardableResult
    func sealPlaintext(context: ChannelHandlerContext) -> Bool {
        plaintext.withUnsafeBytes { sealFrame($0, context: context) }
    }

    /// Encrypts `frame` (one stream frame's plaintext) straight into the output buffer, behind its
    /// length: `length u16 ‖ ciphertext ‖ tag`, contiguous in one buffer.
    func sealFrame(_ frame: UnsafeRawBufferPointer, context: ChannelHandlerContext) -> Bool {
        guard var session = transport.take() else { return false }
        guard frame.count <= NoiseTransport.maximumPlaintextLength else {
            transport = consume session
            fail(.closed, context: context)
            return false
        }
        let sealedLength = frame.count + NoiseTransport.tagLength
        reserveOutput(2 + sealedLength, context: context)
        let sealed: Bool =
            output!.writeWithUnsafeMutableBytes(minimumWritableBytes: 2 + sealedLength) { raw in
                do {
                    try session.seal(frame, into: UnsafeMutableRawBufferPointer(rebasing: raw[2..<(2 + sealedLength)]))
                } catch {
                    return 0
                }
                raw.storeBytes(of: UInt16(sealedLength).bigEndian, toByteOffset: 0, as: UInt16.self)
                return 2 + sealedLength
            } > 0
        transport = consume session
        guard sealed else {
            fail(.closed, context: context)
            return false
        }
        lastWrite = context.eventLoop.now
        counters.framesOut(bytes: sealedLength)
        return true
    }

    /// Makes room for `bytes` contiguous bytes in the output: hands a buffer without that room to
    /// the channel and starts another, sized for bulk frames when this one is large.
    private func reserveOutput(_ bytes: Int, context: ChannelHandlerContext) {
        if let current = output, current.writableBytes >= bytes { return }
        if let full = output.take(), full.readableBytes > 0 { writeOutput(full, context: context) }
        let capacity = bytes > Self.smallOutputBytes ? Self.outputBufferBytes : Self.smallOutputBytes
        output = context.channel.allocator.buffer(capacity: max(capacity, bytes))
    }

    /// Appends `length ‖ body` to the output: one link frame (a handshake message).
    func appendFrame(_ body: UnsafeRawBufferPointer, context: ChannelHandlerContext) {
        precondition(body.count <= Int(UInt16.max), "a link frame carries at most 65,535 bytes")
        lastWrite = context.eventLoop.now
        reserveOutput(2 + body.count, context: context)
        output!.writeInteger(UInt16(body.count))
        output!.writeBytes(body)
    }

    private func writeOutput(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        let promise = outputPromise.take()
        context.write(Self.wrapOutboundOut(buffer), promise: promise)
        unflushed = true
    }

    /// Completes `promise` once the output holding the last frame sealed so far is written.
    private func completeWithOutput(_ promise: EventLoopPromise<Void>) {
        if let outputPromise {
            outputPromise.futureResult.cascade(to: promise)
        } else {
            outputPromise = promise
        }
    }

    /// Hands what has been sealed to the channel and flushes it.
    func flushOutput(context: ChannelHandlerContext) {
        if let rest = output.take(), rest.readableBytes > 0 { writeOutput(rest, context: context) }
        guard unflushed else { return }
        unflushed = false
        context.flush()
    }

    // MARK: - Draining

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is LinkDrain else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        guard !closed else {
            promise?.succeed()
            return
        }
        if let promise { drains.append(promise) }
        completeDrains(context: context)
    }

    /// Once the queues are empty, a ping goes out behind everything written so far; its write
    /// completing means the socket has taken every earlier frame.
    private func completeDrains(context: ChannelHandlerContext) {
        guard !drains.isEmpty, outbound.allSatisfy({ $0.queue.isEmpty }) else { return }
        let waiting = drains
        drains = []
        guard transport != nil, let ping = try? WireCodec.encode(Envelope(.ping(Ping(nonce: 0)))) else {
            for drain in waiting { drain.succeed() }  // nothing more will be written
            return
        }
        plaintext.removeAll(keepingCapacity: true)
        plaintext.append(StreamID.control.rawValue)
        plaintext.append(StreamFrame.FrameType.final.rawValue)
        plaintext.append(contentsOf: ping)
        guard sealPlaintext(context: context) else { return }  // failing the link succeeded them
        let written = context.eventLoop.makePromise(of: Void.self)
        completeWithOutput(written)
        for drain in waiting { written.futureResult.cascade(to: drain) }
        flushOutput(context: context)
    }

    // MARK: - Slow readers

    /// Starts the stall timer while frames wait and none can go: the socket takes nothing, or
    /// every waiting stream is out of credit (a peer that does not read grants none). Any frame
    /// written stops it.
    private func watchForStall(context: ChannelHandlerContext, progressed: Bool) {
        if progressed {
            stallTimer?.cancel()
            stallTimer = nil
        }
        guard outbound.contains(where: { !$0.queue.isEmpty }) else {
            stallTimer?.cancel()
            stallTimer = nil
            return
        }
        guard stallTimer == nil, !context.channel.isWritable || nextStream() == nil else { return }
        stallTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.multiplex.stallTimeout) {
            [weak self] in
            guard let self else { return }
            self.counters.frameRejected(.slowReader)
            self.fail(.slowReader, context: context)
        }
    }

    /// Fails every queued message and waiting sender; drains complete (nothing more will be
    /// written).
    func failQueued(_ error: LinkError) {
        gate.close()
        stallTimer?.cancel()
        stallTimer = nil
        for index in outbound.indices {
            while let pending = outbound[index].queue.popFirst() { pending.promise?.fail(error) }
        }
        for drain in drains { drain.succeed() }
        drains = []
        counters.queuedBytes.decrement(by: Double(queuedBytes))
        queuedBytes = 0
        output = nil
        outputPromise.take()?.fail(error)
    }
}
