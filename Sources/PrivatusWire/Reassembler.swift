/// Puts the data frames of one stream back together into whole messages.
///
/// Keep one per stream of a link and feed it the bytes of that stream's `fragment` and `final`
/// frames in order; it returns each message when its `final` frame arrives. The size limit is
/// checked before any byte of a frame is buffered, and the buffer never grows past the limit:
/// a peer cannot make a node hold more than ``maxMessageBytes`` per stream.
///
/// The empty message (a lone empty `final` frame) is returned as such: the stream layer carries
/// opaque bytes, and deciding what an empty message means is the envelope codec's job (it reads
/// as an envelope of version 0).
public struct Reassembler: Sendable {
    /// The largest message accepted, in bytes.
    public let maxMessageBytes: Int
    private var buffer: [UInt8] = []

    /// Creates an empty reassembler.
    ///
    /// - Parameter maxMessageBytes: The largest message accepted (default 1 MiB,
    ///   ``WireLimits/defaultMaxMessageBytes``); not negative.
    public init(maxMessageBytes: Int = WireLimits.defaultMaxMessageBytes) {
        precondition(maxMessageBytes >= 0, "maxMessageBytes must not be negative")
        self.maxMessageBytes = maxMessageBytes
    }

    /// The bytes of the unfinished message held so far.
    public var bufferedBytes: Int { buffer.count }

    /// The bytes reserved for the unfinished message (at most the limit, plus the allocator's
    /// rounding).
    var bufferedCapacity: Int { buffer.capacity }

    /// Adds the bytes of one data frame.
    ///
    /// - Parameters:
    ///   - bytes: The frame's message bytes.
    ///   - isFinal: Whether the frame was a `final` frame.
    /// - Returns: The whole message when `isFinal`, else `nil`.
    /// - Throws: ``WireError/messageTooLarge`` when the message would exceed ``maxMessageBytes``
    ///   (checked before buffering; the partial message is dropped and the caller closes the
    ///   connection); ``WireError/emptyFragment`` for a non-final frame without bytes.
    public mutating func append(_ bytes: [UInt8], isFinal: Bool) throws(WireError) -> [UInt8]? {
        guard isFinal || !bytes.isEmpty else { throw .emptyFragment }
        let needed = buffer.count + bytes.count
        guard needed <= maxMessageBytes else {
            discard()
            throw .messageTooLarge
        }
        if isFinal && buffer.isEmpty { return bytes }
        reserve(needed)
        buffer.append(contentsOf: bytes)
        return isFinal ? takeMessage() : nil
    }

    /// Adds the bytes of one data frame, read in place (a frame decoded with
    /// ``StreamFrame/Header/init(parsing:)``); see ``append(_:isFinal:)``. The bytes are copied
    /// into the message, so they may be reused once this returns.
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer, isFinal: Bool) throws(WireError) -> [UInt8]? {
        guard isFinal || !bytes.isEmpty else { throw .emptyFragment }
        let needed = buffer.count + bytes.count
        guard needed <= maxMessageBytes else {
            discard()
            throw .messageTooLarge
        }
        reserve(needed)
        buffer.append(contentsOf: bytes)
        return isFinal ? takeMessage() : nil
    }

    /// Grows the buffer geometrically, but never past the limit (Array's own growth would double it).
    private mutating func reserve(_ needed: Int) {
        if needed > buffer.capacity {
            buffer.reserveCapacity(min(maxMessageBytes, max(needed, 2 * buffer.capacity)))
        }
    }

    private mutating func takeMessage() -> [UInt8] {
        var message: [UInt8] = []
        swap(&message, &buffer)
        return message
    }

    /// Adds a data frame's body; see ``append(_:isFinal:)``.
    ///
    /// - Returns: The whole message after a `final` frame; `nil` after a `fragment`, and for
    ///   `windowUpdate` and `reset` frames, which carry no message bytes (a `reset` drops the
    ///   partial message).
    public mutating func receive(_ body: StreamFrame.Body) throws(WireError) -> [UInt8]? {
        switch body {
        case .fragment(let bytes): return try append(bytes, isFinal: false)
        case .final(let bytes): return try append(bytes, isFinal: true)
        case .windowUpdate: return nil
        case .reset:
            discard()
            return nil
        }
    }

    /// Drops the unfinished message, as when the peer resets the stream.
    public mutating func discard() {
        buffer = []
    }
}
