/// Splits one message into the data frames of a stream, one frame at a time.
///
/// Every frame but the last is a `fragment` of exactly `maxChunk` bytes; the last is a `final`
/// of 1 to `maxChunk` bytes. The empty message is one empty `final` frame. A multiplexer pulls
/// frames with ``next()`` as its flow-control credit allows, and may interleave frames of other
/// streams between them (a small `maxChunk` on the bulk stream keeps chat latency low).
///
/// ```swift
/// for frame in Fragmenter(stream: .chat, message: try WireCodec.encode(envelope)) {
///     try send(frame.encoded())
/// }
/// ```
public struct Fragmenter: Sequence, IteratorProtocol, Sendable {
    /// The stream the frames are for.
    public let stream: StreamID
    /// The most message bytes one frame carries.
    public let maxChunk: Int
    private let message: [UInt8]
    private var offset = 0
    private var finished = false

    /// Prepares the frames of `message` on `stream`.
    ///
    /// - Parameters:
    ///   - stream: The stream the message is sent on.
    ///   - message: The encoded message (an ``Envelope`` from ``WireCodec/encode(_:maxBytes:)``).
    ///   - maxChunk: The most message bytes per frame, from 1 to
    ///     ``WireLimits/maxFragmentPayload`` (the default: frames as large as a Noise message
    ///     allows). Anything else is a programming error.
    public init(stream: StreamID, message: [UInt8], maxChunk: Int = WireLimits.maxFragmentPayload) {
        precondition(
            (1...WireLimits.maxFragmentPayload).contains(maxChunk),
            "maxChunk must be from 1 to WireLimits.maxFragmentPayload")
        self.stream = stream
        self.message = message
        self.maxChunk = maxChunk
    }

    /// The message bytes not yet handed out in a frame.
    public var remainingBytes: Int { message.count - offset }

    /// The number of frames still to come.
    public var remainingFrames: Int {
        if finished { return 0 }
        return Swift.max(1, (remainingBytes + maxChunk - 1) / maxChunk)
    }

    /// The next frame of the message, or `nil` after its `final` frame.
    public mutating func next() -> StreamFrame? {
        guard !finished else { return nil }
        let end = Swift.min(message.count, offset + maxChunk)
        let chunk = Array(message[offset..<end])
        offset = end
        if offset == message.count {
            finished = true
            return StreamFrame(stream: stream, body: .final(chunk))
        }
        return StreamFrame(stream: stream, body: .fragment(chunk))
    }
}
