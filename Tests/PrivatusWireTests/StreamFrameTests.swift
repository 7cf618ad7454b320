import PrivatusWire
import Testing

@Suite struct StreamFrameTests {
    static let roundTrips: [StreamFrame] = StreamID.allCases.flatMap { stream in
        [
            StreamFrame(stream: stream, body: .fragment([0x42])),
            StreamFrame(stream: stream, body: .fragment(Array(repeating: 7, count: WireLimits.maxFragmentPayload))),
            StreamFrame(stream: stream, body: .final([])),
            StreamFrame(stream: stream, body: .final([1, 2, 3])),
            StreamFrame(stream: stream, body: .final(Array(repeating: 9, count: WireLimits.maxFragmentPayload))),
            StreamFrame(stream: stream, body: .windowUpdate(credit: 1)),
            StreamFrame(stream: stream, body: .windowUpdate(credit: .max)),
            StreamFrame(stream: stream, body: .reset(code: 0)),
            StreamFrame(stream: stream, body: .reset(code: .max)),
        ]
    }

    @Test(arguments: roundTrips)
    func everyFrameTypeRoundTrips(_ frame: StreamFrame) throws {
        let bytes = try frame.encoded()
        #expect(bytes.count == frame.encodedCount)
        #expect(bytes.count <= WireLimits.maxFramePlaintext)
        #expect(try StreamFrame(decoding: bytes) == frame)
    }

    @Test func layoutIsStreamTypeThenBigEndianBody() throws {
        #expect(try StreamFrame(stream: .control, body: .fragment([0xAA, 0xBB])).encoded() == [0, 0, 0xAA, 0xBB])
        #expect(try StreamFrame(stream: .chat, body: .final([0xCC])).encoded() == [1, 1, 0xCC])
        #expect(try StreamFrame(stream: .chat, body: .final([])).encoded() == [1, 1])
        #expect(
            try StreamFrame(stream: .bulk, body: .windowUpdate(credit: 0x0102_0304)).encoded() == [2, 2, 1, 2, 3, 4])
        #expect(try StreamFrame(stream: .dht, body: .reset(code: 0xABCD)).encoded() == [3, 3, 0xAB, 0xCD])
    }

    @Test func limitsFollowTheNoiseMessageSize() {
        #expect(WireLimits.maxNoiseMessage == 65_535)
        #expect(WireLimits.aeadTagBytes == 16)
        #expect(WireLimits.maxFramePlaintext == 65_535 - 16)
        #expect(WireLimits.maxFragmentPayload == WireLimits.maxFramePlaintext - 2)
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        let error: WireError
        var testDescription: String { name }
    }

    static let malformed: [Malformed] = [
        Malformed(name: "empty", bytes: [], error: .emptyFrame),
        Malformed(name: "stream id only", bytes: [1], error: .truncatedFrame),
        Malformed(name: "unknown stream 4", bytes: [4, 1], error: .unknownStream),
        Malformed(name: "unknown stream 255", bytes: [0xFF, 1, 9], error: .unknownStream),
        Malformed(name: "unknown type 4", bytes: [1, 4], error: .unknownFrameType),
        Malformed(name: "unknown type 255", bytes: [1, 0xFF, 0, 0], error: .unknownFrameType),
        Malformed(name: "fragment without bytes", bytes: [1, 0], error: .emptyFragment),
        Malformed(name: "window update without credit", bytes: [1, 2], error: .truncatedFrame),
        Malformed(name: "short window update", bytes: [1, 2, 0, 0, 1], error: .truncatedFrame),
        Malformed(name: "zero window update", bytes: [1, 2, 0, 0, 0, 0], error: .zeroWindowUpdate),
        Malformed(name: "window update with trailing bytes", bytes: [1, 2, 0, 0, 0, 1, 9], error: .trailingBytes),
        Malformed(name: "short reset", bytes: [1, 3, 0], error: .truncatedFrame),
        Malformed(name: "reset with trailing bytes", bytes: [1, 3, 0, 1, 0], error: .trailingBytes),
        Malformed(
            name: "oversized final", bytes: [1, 1] + Array(repeating: 0, count: WireLimits.maxFragmentPayload + 1),
            error: .frameTooLarge),
        // The size is checked before anything else is read.
        Malformed(
            name: "oversized with unknown stream",
            bytes: [9, 9] + Array(repeating: 0, count: WireLimits.maxFramePlaintext), error: .frameTooLarge),
    ]

    @Test(arguments: malformed)
    func malformedFramesGetTheirSpecificError(_ test: Malformed) {
        #expect(throws: test.error) { try StreamFrame(decoding: test.bytes) }
    }

    @Test func encodingRefusesWhatDecodingRefuses() {
        #expect(throws: WireError.emptyFragment) { try StreamFrame(stream: .chat, body: .fragment([])).encoded() }
        #expect(throws: WireError.zeroWindowUpdate) {
            try StreamFrame(stream: .chat, body: .windowUpdate(credit: 0)).encoded()
        }
        let tooLong = Array(repeating: UInt8(1), count: WireLimits.maxFragmentPayload + 1)
        #expect(throws: WireError.frameTooLarge) { try StreamFrame(stream: .bulk, body: .final(tooLong)).encoded() }
        #expect(throws: WireError.frameTooLarge) { try StreamFrame(stream: .bulk, body: .fragment(tooLong)).encoded() }
    }

    @Test func errorsMapToReplyCodesAndDescribeNoBytes() {
        #expect(WireError.messageTooLarge.replyCode == .tooLarge)
        #expect(WireError.unknownStream.replyCode == .malformed)
        #expect(WireError.malformedEnvelope.replyCode == .malformed)
        let errors: [WireError] = [
            .emptyFrame, .truncatedFrame, .trailingBytes, .frameTooLarge, .unknownStream, .unknownFrameType,
            .emptyFragment, .zeroWindowUpdate, .messageTooLarge, .malformedEnvelope, .invalidField, .encodingFailed,
        ]
        #expect(Set(errors).count == errors.count)
        #expect(Set(errors.map(\.description)).count == errors.count)
    }
}

extension StreamFrameTests {
    @Test func descriptionsShowSizesNotBytes() {
        let frame = StreamFrame(stream: .chat, body: .final([0xDE, 0xAD, 0xBE, 0xEF]))
        #expect("\(frame)" == "chat final (4 bytes)")
        #expect("\(StreamFrame(stream: .bulk, body: .windowUpdate(credit: 9)))" == "bulk window update (+9)")
        #expect("\(StreamFrame.Body.reset(code: 2))" == "reset (code 2)")
    }
}
