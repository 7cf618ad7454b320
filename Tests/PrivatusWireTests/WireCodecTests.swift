import Foundation
import PrivatusCore
import PrivatusWire
import SwiftProtobuf
import Testing

@Suite struct WireCodecTests {
    static let messageID: [UInt8] = Array(0x10..<0x20)

    /// A body with a short name, so test output does not print its bytes.
    struct Case: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let body: Envelope.Body
        init(_ name: String, _ body: Envelope.Body) {
            testDescription = name
            self.body = body
        }
    }

    static let bodies: [Case] = [
        Case("ping 0", .ping(Ping(nonce: 0))),
        Case("ping max", .ping(Ping(nonce: .max))),
        Case("pong", .pong(Pong(nonce: 0x0123_4567_89AB_CDEF))),
        Case("error reply", .errorReply(ErrorReply(code: .rateLimited, kind: 5))),
        Case("error reply, large kind", .errorReply(ErrorReply(code: .unknownKind, kind: 1_000))),
        Case("chat, empty", .chatMessage(ChatMessage(messageID: messageID, sealed: []))),
        Case(
            "chat, larger than a frame",
            .chatMessage(ChatMessage(messageID: messageID, sealed: Array(repeating: 0xEE, count: 70_000)))),
        Case("chat, session start", .chatMessage(ChatMessage(messageID: messageID, sealed: [9], sessionStart: true))),
        Case("receipt delivered", .receipt(Receipt(messageIDs: [messageID], state: .delivered))),
        Case(
            "receipt read, batched",
            .receipt(Receipt(messageIDs: Array(repeating: messageID, count: Receipt.maximumMessageIDs), state: .read))),
        Case("hello", .hello(Hello(listenAddresses: ["127.0.0.1:4000", "[::1]:4000"]))),
        Case("hello, no address", .hello(Hello(listenAddresses: []))),
        Case("bundle request", .bundleRequest(.with { $0.requestID = 7 })),
        Case(
            "bundle response",
            .bundleResponse(
                .with {
                    $0.requestID = 7
                    $0.bundle.identityKey = Data(repeating: 1, count: 32)
                    $0.bundle.signedPrekey.id = 3
                })),
        Case("resend request", .resendRequest(ResendRequest(first: 2, last: 4_097))),
        Case(
            "file want",
            .fileWant(
                .with {
                    $0.transferID = Data(repeating: 5, count: 16)
                    $0.chunks = Array(0..<UInt32(FileWant.maximumChunks))
                })),
        Case(
            "file chunk, largest",
            .fileChunk(
                .with {
                    $0.transferID = Data(repeating: 5, count: 16)
                    $0.index = 1 << 20 - 1
                    $0.sealed = Data(repeating: 0xAB, count: FileChunk.maximumSealedBytes)
                })),
        Case(
            "signed object",
            .signedObject(SignedObject(body: [0, 1, 2], signature: Array(repeating: 3, count: 64), purpose: .presence))),
    ]

    @Test(arguments: bodies)
    func envelopesRoundTrip(_ test: Case) throws {
        let body = test.body
        let bytes = try WireCodec.encode(Envelope(body))
        #expect(try WireCodec.decode(bytes) == .message(body))
        // Through the stream layer too, with the size limits of a real link.
        let frames = Array(Fragmenter(stream: .chat, message: bytes))
        var reassembler = Reassembler()
        var message: [UInt8]?
        for frame in frames { message = try reassembler.receive(StreamFrame(decoding: frame.encoded()).body) }
        #expect(try WireCodec.decode(#require(message)) == .message(body))
    }

    /// Encoded behind a frame header: two zero bytes, then exactly the bytes ``WireCodec/encode``
    /// gives, under the same limit (which counts the encoding alone).
    @Test(arguments: bodies)
    func encodingBehindAFrameHeaderLeavesRoomForIt(_ test: Case) throws {
        let bytes = try WireCodec.encode(Envelope(test.body))
        let behind = try WireCodec.encodeBehindFrameHeader(Envelope(test.body))
        #expect(Array(behind.prefix(WireLimits.frameHeaderBytes)) == [0, 0])
        #expect(Array(behind.dropFirst(WireLimits.frameHeaderBytes)) == bytes)
        #expect(
            try WireCodec.encodeBehindFrameHeader(Envelope(test.body), maxBytes: bytes.count).count == bytes.count + 2)
        #expect(throws: WireError.messageTooLarge) {
            try WireCodec.encodeBehindFrameHeader(Envelope(test.body), maxBytes: bytes.count - 1)
        }
        var unset = Envelope(test.body)
        unset.body = nil
        #expect(throws: WireError.invalidField) { try WireCodec.encodeBehindFrameHeader(unset) }
    }

    @Test(arguments: bodies)
    func kindIsTheFieldNumberOnTheWire(_ test: Case) throws {
        let body = test.body
        let bytes = try WireCodec.encode(Envelope(body))
        #expect(Envelope.Body.knownKinds.contains(body.kind))
        // version = 1 (tag 0x08, value 1), then the body: one length-delimited field, its tag
        // a varint of one byte (kinds 2–15) or two (16–2047).
        #expect(Array(bytes.prefix(2)) == [0x08, 0x01])
        let tag = bytes[2] < 0x80 ? UInt32(bytes[2]) : UInt32(bytes[2] & 0x7F) | UInt32(bytes[3]) << 7
        #expect(tag >> 3 == body.kind)
        #expect(tag & 0x07 == 2)
    }

    @Test func everyKnownKindIsCovered() {
        #expect(Set(Self.bodies.map(\.body.kind)) == Envelope.Body.knownKinds)
    }

    /// Raw protobuf: `version = 1`, then the given fields.
    static func rawEnvelope(version: UInt8 = 1, _ fields: [UInt8]) -> [UInt8] {
        [0x08, version] + fields
    }

    @Test func newerKindDecodesToUnknownKind() throws {
        // Field 16 (a future DHT message), length-delimited: tag (16 << 3 | 2) = 0x82 0x01.
        let dht = Self.rawEnvelope([0x82, 0x01, 0x03, 0xAA, 0xBB, 0xCC])
        let decoded = try WireCodec.decode(dht)
        #expect(decoded == .unknownKind(16))
        var reply = Envelope(.errorReply(ErrorReply(code: .unknownKind, kind: 16)))
        #expect(decoded.errorReply == reply)

        // Field 1000 as a varint: tag 8000 = 0xC0 0x3E.
        #expect(try WireCodec.decode(Self.rawEnvelope([0xC0, 0x3E, 0x05])) == .unknownKind(1_000))
        // The body before the version, and a fixed32 field 48.
        #expect(try WireCodec.decode([0x85, 0x03, 1, 2, 3, 4, 0x08, 0x01]) == .unknownKind(48))

        // No body at all.
        let bare = try WireCodec.decode(Self.rawEnvelope([]))
        #expect(bare == .unknownKind(0))
        reply.errorReply.kind = 0
        #expect(bare.errorReply == reply)
    }

    @Test func otherVersionsDecodeToUnsupportedVersion() throws {
        var envelope = Envelope(.ping(Ping(nonce: 7)))
        envelope.version = 2
        let decoded = try WireCodec.decode(envelope.serializedBytes())
        #expect(decoded == .unsupportedVersion(2, kind: 2))
        #expect(decoded.errorReply == Envelope(.errorReply(ErrorReply(code: .unsupportedVersion, kind: 2))))
        #expect(decoded.errorReply?.version == 1)

        #expect(
            try WireCodec.decode(Self.rawEnvelope(version: 0, [0x82, 0x01, 0x00])) == .unsupportedVersion(0, kind: 16))
        // A version with the wrong wire type is kept as an unknown field 1: still no version,
        // and never taken for the kind.
        #expect(try WireCodec.decode([0x0D, 1, 0, 0, 0]) == .unsupportedVersion(0, kind: 0))
        #expect(try WireCodec.decode([0x0D, 1, 0, 0, 0, 0x82, 0x01, 0x00]) == .unsupportedVersion(0, kind: 16))
        // The empty message is an envelope of version 0 with no body.
        #expect(try WireCodec.decode([]) == .unsupportedVersion(0, kind: 0))
        #expect(try WireCodec.decode(Self.rawEnvelope([0x12, 0x00])) == .message(.ping(Ping(nonce: 0))))
    }

    @Test func encodingRefusesWhatAReceiverWouldNotAccept() {
        var other = Envelope(.ping(Ping(nonce: 1)))
        other.version = 2
        #expect(throws: WireError.invalidField) { try WireCodec.encode(other) }
        var unset = Envelope()
        unset.version = 1
        #expect(throws: WireError.invalidField) { try WireCodec.encode(unset) }
        let shortID = Envelope(.chatMessage(ChatMessage(messageID: Array(Self.messageID.dropLast()), sealed: [1])))
        #expect(throws: WireError.invalidField) { try WireCodec.encode(shortID) }
        let longID = Envelope(.receipt(Receipt(messageIDs: [Self.messageID, Self.messageID + [0]], state: .read)))
        #expect(throws: WireError.invalidField) { try WireCodec.encode(longID) }
        let noID = Envelope(.receipt(Receipt(messageIDs: [], state: .read)))
        #expect(throws: WireError.invalidField) { try WireCodec.encode(noID) }
        let tooManyIDs = Envelope(
            .receipt(Receipt(messageIDs: Array(repeating: Self.messageID, count: 257), state: .delivered)))
        #expect(throws: WireError.invalidField) { try WireCodec.encode(tooManyIDs) }
        let tooManyAddresses = Envelope(.hello(Hello(listenAddresses: Array(repeating: "127.0.0.1:1", count: 9))))
        #expect(throws: WireError.invalidField) { try WireCodec.encode(tooManyAddresses) }
        let longAddress = Envelope(.hello(Hello(listenAddresses: [String(repeating: "a", count: 65)])))
        #expect(throws: WireError.invalidField) { try WireCodec.encode(longAddress) }
        for (first, last) in [(0, 3), (5, 4), (1, 4_097)] as [(UInt64, UInt64)] {
            let resend = Envelope(.resendRequest(ResendRequest(first: first, last: last)))
            #expect(throws: WireError.invalidField, "\(first)...\(last)") { try WireCodec.encode(resend) }
        }
        for want in [
            FileWant.with {
                $0.transferID = Data(repeating: 1, count: 15); $0.chunks = [0]
            },
            FileWant.with { $0.transferID = Data(repeating: 1, count: 16) },
            FileWant.with {
                $0.transferID = Data(repeating: 1, count: 16)
                $0.chunks = Array(0...UInt32(FileWant.maximumChunks))
            },
        ] {
            #expect(throws: WireError.invalidField) { try WireCodec.encode(Envelope(.fileWant(want))) }
        }
        for chunk in [
            FileChunk.with { $0.transferID = Data(repeating: 1, count: 17) },
            FileChunk.with {
                $0.transferID = Data(repeating: 1, count: 16)
                $0.sealed = Data(repeating: 0, count: FileChunk.maximumSealedBytes + 1)
            },
        ] {
            #expect(throws: WireError.invalidField) { try WireCodec.encode(Envelope(.fileChunk(chunk))) }
        }
        let big = Envelope(
            .chatMessage(ChatMessage(messageID: Self.messageID, sealed: Array(repeating: 0, count: 1_000))))
        #expect(throws: WireError.messageTooLarge) { try WireCodec.encode(big, maxBytes: 1_000) }
    }

    @Test func decodingChecksSizeThenProtobufThenFields() throws {
        // Not protobuf at all, but the size is checked first.
        let garbage: [UInt8] = Array(repeating: 0xFF, count: 100)
        #expect(throws: WireError.messageTooLarge) { try WireCodec.decode(garbage, maxBytes: 99) }
        #expect(throws: WireError.malformedEnvelope) { try WireCodec.decode(garbage, maxBytes: 100) }
        #expect(throws: WireError.messageTooLarge) {
            try WireCodec.decode(Array(repeating: 0, count: WireLimits.defaultMaxMessageBytes + 1))
        }
        // A length running past the end; a field number 0; a known message with the wrong wire type.
        #expect(throws: WireError.malformedEnvelope) { try WireCodec.decode(Self.rawEnvelope([0x12, 0x05, 0x08])) }
        #expect(throws: WireError.malformedEnvelope) { try WireCodec.decode([0x00, 0x01]) }
        for kind in Envelope.Body.knownKinds.sorted() {
            // A known kind as a varint: the parser keeps it as an unknown field; it is not unknown.
            let tag = kind << 3
            let varint = tag < 0x80 ? [UInt8(tag)] : [UInt8(tag & 0x7F) | 0x80, UInt8(tag >> 7)]
            #expect(throws: WireError.malformedEnvelope) { try WireCodec.decode(Self.rawEnvelope(varint + [0x01])) }
        }

        var chat = Privatus_Wire_V1_ChatMessage()
        chat.messageID = Data(repeating: 1, count: 15)
        var envelope = Envelope()
        envelope.version = 1
        envelope.chatMessage = chat
        #expect(throws: WireError.invalidField) { try WireCodec.decode(envelope.serializedBytes()) }
    }

    @Test func unknownEnumValuesPassThrough() throws {
        // ErrorReply { code: 99, kind: 3 } inside an envelope.
        let bytes = Self.rawEnvelope([0x22, 0x04, 0x08, 99, 0x10, 0x03])
        guard case .message(.errorReply(let reply)) = try WireCodec.decode(bytes) else {
            Issue.record("not decoded as an error reply")
            return
        }
        #expect(reply.code == .UNRECOGNIZED(99))
        #expect(reply.kind == 3)
    }

    @Test func signedObjectBodyStaysTheExactBytesSigned() throws {
        // The body is opaque: even bytes that are not a canonical protobuf encoding survive.
        let body: [UInt8] = [0x08, 0x81, 0x80, 0x80, 0x00, 0xFF, 0x00]
        let object = SignedObject(body: body, signature: [9, 9], purpose: .dhtRecord)
        guard
            case .message(.signedObject(let decoded)) = try WireCodec.decode(
                WireCodec.encode(Envelope(.signedObject(object))))
        else {
            Issue.record("not decoded as a signed object")
            return
        }
        #expect(Array(decoded.body) == body)
        #expect(decoded.signaturePurpose == .dhtRecord)
        #expect(
            SignaturePurpose.dhtRecord.signedMessage(over: decoded.body)
                == SignaturePurpose.dhtRecord.signedMessage(over: body))
    }

    @Test func everySignaturePurposeHasOneWireNumber() {
        let numbers = SignedObject.purposeNumbers.map(\.number)
        #expect(Set(numbers).count == numbers.count)
        #expect(!numbers.contains(0))
        for purpose in SignaturePurpose.all {
            let number = SignedObject.purposeNumber(of: purpose)
            #expect(number != nil, "no wire number for \(purpose)")
            #expect(SignedObject(body: [], signature: [], purpose: number ?? 0).signaturePurpose == purpose)
        }
        #expect(SignedObject(body: [], signature: [], purpose: 0).signaturePurpose == nil)
        #expect(SignedObject(body: [], signature: [], purpose: 10_000).signaturePurpose == nil)
    }

    @Test func decodedDescriptionNamesOnlyTheKind() throws {
        let secret: [UInt8] = Array("attack at dawn".utf8)
        let decoded = try WireCodec.decode(
            WireCodec.encode(Envelope(.chatMessage(ChatMessage(messageID: Self.messageID, sealed: secret)))))
        #expect("\(decoded)" == "message of kind 5")
        #expect("\(DecodedEnvelope.unknownKind(16))" == "unknown kind 16")
    }
}

extension WireCodecTests {
    /// The example of docs/PROTOCOL.md, "Envelope".
    @Test func pingOnTheControlStreamHasTheDocumentedBytes() throws {
        let message = try WireCodec.encode(Envelope(.ping(Ping(nonce: 1))))
        let frames = Array(Fragmenter(stream: .control, message: message))
        #expect(try frames.map { try $0.encoded() } == [[0x00, 0x01, 0x08, 0x01, 0x12, 0x02, 0x08, 0x01]])
    }
}
