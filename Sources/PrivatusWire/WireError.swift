/// Why bytes from a peer were refused by the wire layer, or why a message cannot be sent.
///
/// A peer that sends any of these is misbehaving or broken: the caller closes the connection
/// (after an ``ErrorReply`` where ``replyCode`` gives one). No error carries the offending bytes,
/// and no description shows them.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case emptyFrame
        case truncatedFrame
        case trailingBytes
        case frameTooLarge
        case unknownStream
        case unknownFrameType
        case emptyFragment
        case zeroWindowUpdate
        case messageTooLarge
        case malformedEnvelope
        case invalidField
        case encodingFailed
    }

    private let code: Code

    private init(_ code: Code) {
        self.code = code
    }

    /// A stream frame with no bytes at all.
    public static let emptyFrame = Self(.emptyFrame)
    /// A stream frame that ends before its header or its fixed-size body does.
    public static let truncatedFrame = Self(.truncatedFrame)
    /// A stream frame with bytes after its fixed-size body.
    public static let trailingBytes = Self(.trailingBytes)
    /// A stream frame larger than ``WireLimits/maxFramePlaintext``.
    public static let frameTooLarge = Self(.frameTooLarge)
    /// A stream id that is not a ``StreamID``.
    public static let unknownStream = Self(.unknownStream)
    /// A frame type that is not a ``StreamFrame/FrameType``.
    public static let unknownFrameType = Self(.unknownFrameType)
    /// A `fragment` frame that carries no message bytes (only a `final` frame may be empty).
    public static let emptyFragment = Self(.emptyFragment)
    /// A `windowUpdate` frame granting no credit.
    public static let zeroWindowUpdate = Self(.zeroWindowUpdate)
    /// A message larger than the receiver's maximum: refused before its bytes were buffered.
    public static let messageTooLarge = Self(.messageTooLarge)
    /// Bytes that do not parse as an ``Envelope``.
    public static let malformedEnvelope = Self(.malformedEnvelope)
    /// An envelope that parses but breaks a rule of the schema (a message id not 16 bytes long).
    public static let invalidField = Self(.invalidField)
    /// An envelope could not be serialized.
    public static let encodingFailed = Self(.encodingFailed)

    /// The code of the ``ErrorReply`` that answers a message refused with this error.
    public var replyCode: ErrorReply.Code {
        switch code {
        case .messageTooLarge: .tooLarge
        case .encodingFailed: .internal
        default: .malformed
        }
    }

    public var description: String {
        switch code {
        case .emptyFrame: "the stream frame is empty"
        case .truncatedFrame: "the stream frame is truncated"
        case .trailingBytes: "the stream frame has bytes after its body"
        case .frameTooLarge: "the stream frame is larger than a Noise message can carry"
        case .unknownStream: "the stream frame names an unknown stream"
        case .unknownFrameType: "the stream frame has an unknown type"
        case .emptyFragment: "a non-final fragment carries no bytes"
        case .zeroWindowUpdate: "a window update grants no credit"
        case .messageTooLarge: "the message is larger than allowed"
        case .malformedEnvelope: "the message is not a well-formed envelope"
        case .invalidField: "a field of the envelope breaks the schema's rules"
        case .encodingFailed: "the envelope could not be encoded"
        }
    }
}
