import Foundation
import SwiftProtobuf

/// An envelope as received: a message to act on, or what the receiver must answer instead.
///
/// ``errorReply`` gives the answer for the two refusals, so a newer peer's message never
/// crashes or stalls an older node: it learns what was not understood and may fall back.
public enum DecodedEnvelope: Equatable, Sendable, CustomStringConvertible {
    /// A version-1 envelope of a known kind.
    case message(Envelope.Body)
    /// An envelope of another version (0 when the field is absent), and its kind (0: none).
    case unsupportedVersion(UInt32, kind: UInt32)
    /// A version-1 envelope whose body is unset (kind 0) or of a kind this node does not know
    /// (a newer peer's message; the kind is the first unknown field number other than 1).
    case unknownKind(UInt32)

    /// The envelope to send back: an ``ErrorReply`` (of the current version) for the refusals,
    /// `nil` for a message.
    public var errorReply: Envelope? {
        switch self {
        case .message: nil
        case .unsupportedVersion(_, let kind): Envelope(.errorReply(ErrorReply(code: .unsupportedVersion, kind: kind)))
        case .unknownKind(let kind): Envelope(.errorReply(ErrorReply(code: .unknownKind, kind: kind)))
        }
    }

    /// Names the case and the kind only: never the message's contents (the generated messages'
    /// own descriptions print every field).
    public var description: String {
        switch self {
        case .message(let body): "message of kind \(body.kind)"
        case .unsupportedVersion(let version, let kind): "unsupported version \(version) (kind \(kind))"
        case .unknownKind(let kind): "unknown kind \(kind)"
        }
    }
}

/// Encodes and decodes ``Envelope``s: the messages streams carry.
///
/// Sizes are checked before parsing; a message id must be 16 bytes; everything else about a
/// message's meaning is for the layer that handles its kind. Unknown enum values (a newer peer's
/// error code or receipt state) and unknown fields inside known messages pass through.
public enum WireCodec {
    /// Encodes an envelope for ``Fragmenter``.
    ///
    /// - Parameters:
    ///   - envelope: A current-version envelope with a body (build it with
    ///     ``Envelope/init(_:)``).
    ///   - maxBytes: The largest encoding allowed (default 1 MiB, the receiver's default limit).
    /// - Throws: ``WireError/invalidField`` for another version, an unset body or a message id
    ///   that is not 16 bytes; ``WireError/messageTooLarge``; ``WireError/encodingFailed``.
    public static func encode(
        _ envelope: Envelope, maxBytes: Int = WireLimits.defaultMaxMessageBytes
    ) throws(WireError) -> [UInt8] {
        try serialize(envelope, maxBytes: maxBytes)
    }

    /// Encodes an envelope as ``encode(_:maxBytes:)`` does, behind
    /// ``WireLimits/frameHeaderBytes`` zero bytes: a link writes a stream frame's header into them
    /// and seals each frame from the message's bytes instead of a copy behind the header.
    /// - Returns: `2 zero bytes ‖ encoding`; `maxBytes` limits the encoding alone.
    public static func encodeBehindFrameHeader(
        _ envelope: Envelope, maxBytes: Int = WireLimits.defaultMaxMessageBytes
    ) throws(WireError) -> [UInt8] {
        let bytes: BytesBehindFrameHeader = try serialize(envelope, maxBytes: maxBytes)
        return bytes.storage
    }

    /// The checks and the encoding both forms share, into `Bytes`.
    private static func serialize<Bytes: SwiftProtobufContiguousBytes>(
        _ envelope: Envelope, maxBytes: Int
    ) throws(WireError) -> Bytes {
        guard envelope.version == WireLimits.currentVersion, let body = envelope.body else {
            throw .invalidField
        }
        try validate(body)
        let bytes: Bytes
        do {
            bytes = try envelope.serializedBytes()
        } catch {
            throw .encodingFailed
        }
        guard bytes.count <= maxBytes else { throw .messageTooLarge }
        return bytes
    }

    /// Decodes one message from a ``Reassembler``.
    ///
    /// Order: the size; the protobuf parse; the version; the kind; the message id lengths.
    ///
    /// - Parameters:
    ///   - bytes: The message.
    ///   - maxBytes: The largest message accepted (default 1 MiB), checked before parsing.
    /// - Returns: The message, or the refusal to answer with ``DecodedEnvelope/errorReply``.
    /// - Throws: ``WireError/messageTooLarge``, ``WireError/malformedEnvelope`` (not protobuf,
    ///   not an `Envelope`, or a known kind with the wrong wire type), ``WireError/invalidField``
    ///   (a message id not 16 bytes long).
    public static func decode(
        _ bytes: [UInt8], maxBytes: Int = WireLimits.defaultMaxMessageBytes
    ) throws(WireError) -> DecodedEnvelope {
        try decodeContiguous(bytes, maxBytes: maxBytes)
    }

    /// Decodes one message held in `Data` (a slice of a decrypted link frame, read in place);
    /// see ``decode(_:maxBytes:)``.
    public static func decode(
        data bytes: Data, maxBytes: Int = WireLimits.defaultMaxMessageBytes
    ) throws(WireError) -> DecodedEnvelope {
        try decodeContiguous(bytes, maxBytes: maxBytes)
    }

    private static func decodeContiguous(
        _ bytes: some SwiftProtobufContiguousBytes, maxBytes: Int
    ) throws(WireError) -> DecodedEnvelope {
        guard bytes.count <= maxBytes else { throw .messageTooLarge }
        let envelope: Envelope
        do {
            envelope = try Envelope(serializedBytes: bytes)
        } catch {
            throw .malformedEnvelope
        }
        guard envelope.version == WireLimits.currentVersion else {
            let kind = envelope.body?.kind ?? unknownKind(in: envelope.unknownFields.data)
            return .unsupportedVersion(envelope.version, kind: kind)
        }
        guard let body = envelope.body else {
            let kind = unknownKind(in: envelope.unknownFields.data)
            // A known kind the parser kept as unknown had the wrong wire type.
            guard !Envelope.Body.knownKinds.contains(kind) else { throw .malformedEnvelope }
            return .unknownKind(kind)
        }
        try validate(body)
        return .message(body)
    }

    private static func validate(_ body: Envelope.Body) throws(WireError) {
        switch body {
        case .chatMessage(let message):
            guard message.messageID.count == ChatMessage.messageIDBytes else { throw .invalidField }
        case .receipt(let receipt):
            guard !receipt.messageIds.isEmpty, receipt.messageIds.count <= Receipt.maximumMessageIDs,
                receipt.messageIds.allSatisfy({ $0.count == ChatMessage.messageIDBytes })
            else { throw .invalidField }
        case .hello(let hello):
            guard hello.listenAddresses.count <= Hello.maximumAddresses,
                hello.listenAddresses.allSatisfy({ $0.utf8.count <= Hello.maximumAddressBytes })
            else { throw .invalidField }
        case .resendRequest(let request):
            guard request.first >= 1, request.last >= request.first,
                request.last - request.first < ResendRequest.maximumSpan
            else { throw .invalidField }
        case .fileWant(let want):
            guard want.transferID.count == FileWant.transferIDBytes, !want.chunks.isEmpty,
                want.chunks.count <= FileWant.maximumChunks
            else { throw .invalidField }
        case .fileChunk(let chunk):
            guard chunk.transferID.count == FileWant.transferIDBytes,
                chunk.sealed.count <= FileChunk.maximumSealedBytes
            else { throw .invalidField }
        case .ping, .pong, .errorReply, .signedObject, .bundleRequest, .bundleResponse:
            break
        }
    }

    /// The kind a newer peer meant: the number of the first field in `unknown` (protobuf fields
    /// the parser kept as unknown) that can be a kind, or 0 if there is none.
    ///
    /// Field 1 is the version even with a wire type the parser did not accept, so it is skipped.
    private static func unknownKind(in unknown: Data) -> UInt32 {
        var bytes = unknown[...]
        func varint() -> UInt64? {
            var value: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 7) {
                guard let byte = bytes.popFirst() else { return nil }
                value |= UInt64(byte & 0x7f) << UInt64(shift)
                if byte & 0x80 == 0 { return value }
            }
            return nil
        }
        while let tag = varint() {
            let number = tag >> 3
            if number >= 2 { return UInt32(truncatingIfNeeded: number) }
            let skip: UInt64
            switch tag & 7 {
            case 0:
                guard varint() != nil else { return 0 }
                skip = 0
            case 1:
                skip = 8
            case 2:
                guard let length = varint() else { return 0 }
                skip = length
            case 5:
                skip = 4
            default:
                return 0  // a group in field 1: nothing a peer of ours sends
            }
            guard skip <= UInt64(bytes.count) else { return 0 }
            bytes = bytes.dropFirst(Int(skip))
        }
        return 0
    }
}

/// Bytes that swift-protobuf encodes into, with room for a stream frame's header before them:
/// `storage` is `WireLimits.frameHeaderBytes` zero bytes, then the bytes the encoder sees.
struct BytesBehindFrameHeader: SwiftProtobufContiguousBytes {
    var storage: [UInt8]

    init(repeating value: UInt8, count: Int) {
        storage = [UInt8](repeating: value, count: WireLimits.frameHeaderBytes + count)
        for index in 0..<WireLimits.frameHeaderBytes { storage[index] = 0 }
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        storage = [UInt8](repeating: 0, count: WireLimits.frameHeaderBytes)
        storage.append(contentsOf: sequence)
    }

    var count: Int { storage.count - WireLimits.frameHeaderBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[WireLimits.frameHeaderBytes...])) }
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeMutableBytes {
            try body(UnsafeMutableRawBufferPointer(rebasing: $0[WireLimits.frameHeaderBytes...]))
        }
    }
}
