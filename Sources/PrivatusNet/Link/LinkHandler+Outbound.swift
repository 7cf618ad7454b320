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
        let count = message.bytes.count
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
            Pending(bytes: message.bytes, promise: promise, gatedBytes: gatedBytes))
    }

    /// Seals frames while the socket takes them, most urgent stream first.
    func pump(context: ChannelHandlerContext) {
        guard !closed, transport != nil else { return }
        var wrote = false
        while context.channel.isWritable, let index = nextStream() {
            let head = outbound[index].queue.startIndex
            let pending = outbound[index].queue[head]
            let end = min(pending.bytes.count, pending.offset + WireLimits.maxFragmentPayload)
            let payload = end - pending.offset
            let isFinal = end == pending.bytes.count
            outbound[index].credit -= payload
            queuedBytes -= payload
            counters.queuedBytes.decrement(by: Double(payload))
            plaintext.removeAll(keepingCapacity: true)
            plaintext.reserveCapacity(WireLimits.frameHeaderBytes + payload)
            plaintext.append(UInt8(index))
            plaintext.append(isFinal ? StreamFrame.FrameType.final.rawValue : StreamFrame.FrameType.fragment.rawValue)
            var start = pending.offset
            while start < end {
                let stop = min(end, start + Self.copyPiece)
                plaintext.append(contentsOf: pending.bytes[start..<stop])
                start = stop
            }
            // A failed seal, or a channel that closed under the write, has failed the queues.
            guard sealPlaintext(context: context), !closed else { return }
            wrote = true
            if isFinal {
                outbound[index].queue.removeFirst()
                if let promise = pending.promise { completeWithOutput(promise) }
                if pending.gatedBytes > 0 { gate.leave(pending.gatedBytes) }
            } else {
                outbound[index].queue[head].offset = end
            }
        }
        if wrote { flushOutput(context: context) }
        watchForStall(context: context, progressed: wrote)
        completeDrains(context: context)
        if outbound.allSatisfy({ $0.queue.isEmpty }) { releaseSealingBuffers() }
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
        guard var session = transport.take() else { return false }
        let sealed: (ciphertext: Data, tag: Data)
        do {
            sealed = try session.seal(plaintext)
        } catch {
            fail(.closed, context: context)
            return false
        }
        transport = consume session
        counters.framesOut(bytes: sealed.ciphertext.count + sealed.tag.count)
        sealed.ciphertext.withUnsafeBytes { ciphertext in
            sealed.tag.withUnsafeBytes { tag in appendFrame(ciphertext, tag, context: context) }
        }
        return true
    }

    /// Appends `length ‖ body ‖ suffix` to the output: one link frame of `body` and `suffix`.
    func appendFrame(
        _ body: UnsafeRawBufferPointer, _ suffix: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        context: ChannelHandlerContext
    ) {
        let length = body.count + suffix.count
        precondition(length <= Int(UInt16.max), "a link frame carries at most 65,535 bytes")
        lastWrite = context.eventLoop.now
        withUnsafeBytes(of: UInt16(length).bigEndian) { appendOutput($0, following: length, context: context) }
        appendOutput(body, following: suffix.count, context: context)
        appendOutput(suffix, following: 0, context: context)
    }

    /// Copies `bytes` into the output buffers, handing each full one to the channel. `following`:
    /// bytes of the same frame still to come, to size a new buffer.
    private func appendOutput(_ bytes: UnsafeRawBufferPointer, following: Int, context: ChannelHandlerContext) {
        var rest = bytes
        while !rest.isEmpty {
            if (output?.writableBytes ?? 0) == 0 {
                if let full = output.take() { writeOutput(full, context: context) }
                output = context.channel.allocator.buffer(capacity: min(Self.outputBufferBytes, rest.count + following))
            }
            let count = min(rest.count, output!.writableBytes, Self.copyPiece)
            output!.writeBytes(UnsafeRawBufferPointer(rebasing: rest[..<count]))
            rest = UnsafeRawBufferPointer(rebasing: rest[count...])
        }
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
