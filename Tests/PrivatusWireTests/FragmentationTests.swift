import PrivatusCore
import Testing

@testable import PrivatusWire

@Suite struct FragmentationTests {
    static func message(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
    }

    /// Sends `message` through fragmenter, frame encoding, frame decoding and reassembler.
    static func roundTrip(_ message: [UInt8], maxChunk: Int) throws -> (frames: [StreamFrame], result: [UInt8]?) {
        let frames = Array(Fragmenter(stream: .bulk, message: message, maxChunk: maxChunk))
        var reassembler = Reassembler()
        var result: [UInt8]?
        for (index, frame) in frames.enumerated() {
            let decoded = try StreamFrame(decoding: frame.encoded())
            #expect(decoded == frame)
            let output = try reassembler.receive(decoded.body)
            #expect((output != nil) == (index == frames.count - 1))
            result = output ?? result
        }
        #expect(reassembler.bufferedBytes == 0)
        return (frames, result)
    }

    static let chunk = WireLimits.maxFragmentPayload
    static let sizes: [(size: Int, maxChunk: Int)] = [
        (0, chunk), (1, chunk), (chunk, chunk), (2 * chunk, chunk), (2 * chunk + 1, chunk), (chunk + 1, chunk),
        (1 << 20, chunk),
        (0, 1000), (1, 1000), (1000, 1000), (3000, 1000), (3001, 1000), (1 << 20, 1000), (5, 1),
    ]

    @Test(arguments: sizes)
    func messagesOfEverySizeRoundTrip(_ size: Int, _ maxChunk: Int) throws {
        let message = Self.message(size)
        let fragmenter = Fragmenter(stream: .bulk, message: message, maxChunk: maxChunk)
        let expectedFrames = max(1, (size + maxChunk - 1) / maxChunk)
        #expect(fragmenter.remainingFrames == expectedFrames)
        #expect(fragmenter.remainingBytes == size)

        let (frames, result) = try Self.roundTrip(message, maxChunk: maxChunk)
        #expect(result == message)
        #expect(frames.count == expectedFrames)
        for frame in frames.dropLast() {
            guard case .fragment(let bytes) = frame.body else {
                Issue.record("a frame before the last is not a fragment")
                continue
            }
            #expect(bytes.count == maxChunk)
        }
        let last = try #require(frames.last)
        guard case .final(let bytes) = last.body else {
            Issue.record("the last frame is not final")
            return
        }
        #expect(bytes.count == (size == 0 ? 0 : (size - 1) % maxChunk + 1))
        #expect(frames.allSatisfy { $0.encodedCount <= WireLimits.maxFramePlaintext && $0.stream == .bulk })
    }

    @Test func fragmenterIsDoneAfterTheFinalFrame() {
        var fragmenter = Fragmenter(stream: .chat, message: [1, 2, 3], maxChunk: 2)
        #expect(fragmenter.next() == StreamFrame(stream: .chat, body: .fragment([1, 2])))
        #expect(fragmenter.remainingFrames == 1)
        #expect(fragmenter.next() == StreamFrame(stream: .chat, body: .final([3])))
        #expect(fragmenter.remainingFrames == 0)
        #expect(fragmenter.next() == nil)
        #expect(fragmenter.next() == nil)
    }

    @Test func interleavedStreamsReassembleIndependently() throws {
        let chat = Self.message(1_000, seed: 2)
        let bulk = Self.message(5_000, seed: 3)
        var chatFrames = Fragmenter(stream: .chat, message: chat, maxChunk: 100)
        var bulkFrames = Fragmenter(stream: .bulk, message: bulk, maxChunk: 700)
        var wire: [[UInt8]] = []
        while true {
            let next = [chatFrames.next(), bulkFrames.next()].compactMap { $0 }
            if next.isEmpty { break }
            for frame in next { wire.append(try frame.encoded()) }
            wire.append(try StreamFrame(stream: .control, body: .windowUpdate(credit: 4096)).encoded())
        }

        var reassemblers: [StreamID: Reassembler] = [.chat: Reassembler(), .bulk: Reassembler()]
        var received: [StreamID: [UInt8]] = [:]
        for bytes in wire {
            let frame = try StreamFrame(decoding: bytes)
            guard frame.stream != .control else { continue }
            if let message = try reassemblers[frame.stream]!.receive(frame.body) {
                #expect(received[frame.stream] == nil)
                received[frame.stream] = message
            }
        }
        #expect(received == [.chat: chat, .bulk: bulk])
    }

    @Test func overLimitMessageIsRefusedBeforeBuffering() throws {
        let limit = 10_000
        var reassembler = Reassembler(maxMessageBytes: limit)
        #expect(try reassembler.append(Self.message(4_000), isFinal: false) == nil)
        #expect(try reassembler.append(Self.message(4_000), isFinal: false) == nil)
        #expect(reassembler.bufferedBytes == 8_000)
        #expect(throws: WireError.messageTooLarge) { try reassembler.append(Self.message(2_001), isFinal: false) }
        #expect(reassembler.bufferedBytes == 0)

        // Exactly the limit is accepted, one byte more is not, in one frame or several.
        #expect(try reassembler.append(Self.message(limit), isFinal: true)?.count == limit)
        #expect(throws: WireError.messageTooLarge) { try reassembler.append(Self.message(limit + 1), isFinal: true) }
        #expect(try reassembler.append(Self.message(limit - 1), isFinal: false) == nil)
        #expect(throws: WireError.messageTooLarge) { try reassembler.append([1, 2], isFinal: true) }
        #expect(reassembler.bufferedBytes == 0)
    }

    @Test func bufferNeverGrowsPastTheDefaultLimit() throws {
        var reassembler = Reassembler()
        let limit = WireLimits.defaultMaxMessageBytes
        var fragmenter = Fragmenter(stream: .bulk, message: Self.message(limit + 1), maxChunk: 4_000)
        var refused = false
        while let frame = fragmenter.next() {
            do {
                _ = try reassembler.receive(frame.body)
            } catch {
                #expect(error == .messageTooLarge)
                refused = true
                break
            }
            #expect(reassembler.bufferedBytes <= limit)
            // Geometric growth is capped at the limit; only the allocator's rounding is on top.
            #expect(reassembler.bufferedCapacity <= limit + 4_096)
        }
        #expect(refused)
        #expect(fragmenter.remainingBytes == 0)
        #expect(reassembler.bufferedBytes == 0)
    }

    @Test func resetDropsThePartialMessage() throws {
        var reassembler = Reassembler()
        #expect(try reassembler.receive(.fragment([1, 2, 3])) == nil)
        #expect(try reassembler.receive(.windowUpdate(credit: 10)) == nil)
        #expect(reassembler.bufferedBytes == 3)
        #expect(try reassembler.receive(.reset(code: 1)) == nil)
        #expect(reassembler.bufferedBytes == 0)
        #expect(try reassembler.receive(.final([4])) == [4])
    }

    @Test func emptyMessagesAreAllowedButEmptyFragmentsAreNot() throws {
        var reassembler = Reassembler()
        #expect(try reassembler.append([], isFinal: true) == [])
        #expect(throws: WireError.emptyFragment) { try reassembler.append([], isFinal: false) }
        #expect(try reassembler.receive(.fragment([5])) == nil)
        #expect(try reassembler.receive(.final([])) == [5])
    }
}
