/// The size limits of the wire format (docs/PROTOCOL.md, "Wire format").
///
/// A link frame on TCP is a u16 big-endian length and one Noise transport message; the
/// plaintext of that message is one ``StreamFrame``. A message (one encoded ``Envelope``) larger
/// than a frame is split by ``Fragmenter`` and put together again by ``Reassembler``, up to a
/// configurable maximum.
public enum WireLimits {
    /// The largest Noise transport message, tag included (the Noise specification's limit).
    public static let maxNoiseMessage = 65_535
    /// The AEAD tag every Noise transport message carries after its ciphertext.
    public static let aeadTagBytes = 16
    /// The largest stream frame: the plaintext of the largest Noise transport message.
    public static let maxFramePlaintext = maxNoiseMessage - aeadTagBytes
    /// The stream id and frame type bytes in front of every stream frame's body.
    public static let frameHeaderBytes = 2
    /// The most message bytes one `fragment` or `final` frame can carry.
    public static let maxFragmentPayload = maxFramePlaintext - frameHeaderBytes
    /// The default largest message a ``Reassembler`` accepts, and ``WireCodec`` decodes: 1 MiB.
    public static let defaultMaxMessageBytes = 1 << 20
    /// The envelope version this implementation speaks.
    public static let currentVersion: UInt32 = 1
}
