import PrivatusCore

extension SignedObject {
    /// The numbers that name signature purposes in ``SignedObject``'s `purpose` field
    /// (docs/PROTOCOL.md, "Wire format"). Numbers are never reused; 0 names no purpose.
    public static let purposeNumbers: [(number: UInt32, purpose: SignaturePurpose)] = [
        (1, .identityDH),
        (2, .signedPrekey),
        (3, .pqPrekey),
        (4, .envelopeKey),
        (5, .noiseStatic),
        (6, .dhtRecord),
        (7, .presence),
        (8, .groupState),
        (9, .senderKey),
        (10, .dhtPacket),
        (11, .presenceValue),
    ]

    /// The number of a signature purpose.
    public static func purposeNumber(of purpose: SignaturePurpose) -> UInt32? {
        purposeNumbers.first { $0.purpose == purpose }?.number
    }

    /// The signature purpose the object names, or `nil` for 0 or a number this node does not
    /// know (a verifier refuses the object then).
    public var signaturePurpose: SignaturePurpose? {
        Self.purposeNumbers.first { $0.number == purpose }?.purpose
    }

    /// A signed object for `purpose`: `body` exactly as signed, and its signature.
    ///
    /// The signature must cover `purpose.signedMessage(over: body)`. A verifier checks it over
    /// the received `body` bytes and never over a re-encoding of what it parsed from them.
    public init(body: [UInt8], signature: [UInt8], purpose: SignaturePurpose) {
        guard let number = Self.purposeNumber(of: purpose) else {
            preconditionFailure("every SignaturePurpose has a wire number")
        }
        self.init(body: body, signature: signature, purpose: number)
    }
}
