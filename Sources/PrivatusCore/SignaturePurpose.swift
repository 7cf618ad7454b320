/// The purpose a signature is made for: the domain separation of every Privatus signature.
///
/// Every signature covers `"Privatus-v1/" ‖ purpose ‖ 0x00 ‖ fields` (docs/PROTOCOL.md). A
/// purpose name is ASCII without NUL, so the encoding is unambiguous, and a signature made for
/// one purpose never verifies for another. The set is closed: purposes are added here, one per
/// kind of signed object, never built from outside input.
public struct SignaturePurpose: Hashable, Sendable, CustomStringConvertible {
    /// The purpose string placed between the domain prefix and the NUL separator.
    public let name: String

    private init(_ name: String) {
        precondition(name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }, "purpose names are printable ASCII")
        self.name = name
    }

    /// The identity-DH X25519 key used in PQXDH, bound to the identity.
    public static let identityDH = Self("identity-dh")
    /// The signed X25519 prekey.
    public static let signedPrekey = Self("signed-prekey")
    /// The signed ML-KEM-768 prekey.
    public static let pqPrekey = Self("pq-prekey")
    /// The X-Wing envelope key for store-and-forward.
    public static let envelopeKey = Self("envelope-key")
    /// A node's Noise static X25519 key.
    public static let noiseStatic = Self("noise-static")
    /// A record published in the DHT.
    public static let dhtRecord = Self("dht-record")
    /// A presence record.
    public static let presence = Self("presence")
    /// A DHT datagram, signed by the sending node's DHT key.
    public static let dhtPacket = Self("dht-packet")
    /// What a presence record says (inside its sealed value), signed by the user's identity so
    /// that contacts follow only addresses the user gave.
    public static let presenceValue = Self("presence-value")
    /// A group's state.
    public static let groupState = Self("group-state")
    /// A group sender key.
    public static let senderKey = Self("sender-key")

    /// Every purpose defined so far.
    public static let all: [SignaturePurpose] = [
        .identityDH, .signedPrekey, .pqPrekey, .envelopeKey, .noiseStatic, .dhtRecord, .presence,
        .groupState, .senderKey, .dhtPacket, .presenceValue,
    ]

    /// The fixed prefix of every signed message.
    public static let domainPrefix = "Privatus-v1/"

    /// The exact bytes a signature for this purpose covers.
    public func signedMessage(over fields: some Sequence<UInt8>) -> [UInt8] {
        var message = Array(Self.domainPrefix.utf8)
        message.append(contentsOf: name.utf8)
        message.append(0)
        message.append(contentsOf: fields)
        return message
    }

    public var description: String { name }
}
