import Foundation

// Short names for the generated messages of package `privatus.wire.v1`. The generated names
// keep the package (swift-protobuf advises against `swift_prefix`); these aliases are the
// names the rest of Privatus uses.

/// One message on a stream (`privatus.wire.v1.Envelope`): a version and one body.
public typealias Envelope = Privatus_Wire_V1_Envelope
/// A keepalive asking for a ``Pong`` with the same nonce.
public typealias Ping = Privatus_Wire_V1_Ping
/// The answer to a ``Ping``.
public typealias Pong = Privatus_Wire_V1_Pong
/// A refusal of a peer's message: a code and a kind number, never free text.
public typealias ErrorReply = Privatus_Wire_V1_ErrorReply
/// A chat message: a 16-byte id and the sealed Double Ratchet message.
public typealias ChatMessage = Privatus_Wire_V1_ChatMessage
/// A delivery or read receipt for a ``ChatMessage``.
public typealias Receipt = Privatus_Wire_V1_Receipt
/// A signed object as the exact bytes signed, the signature and the purpose number.
public typealias SignedObject = Privatus_Wire_V1_SignedObject
/// Where the sender of a link can be reached now; the first message on each new link.
public typealias Hello = Privatus_Wire_V1_Hello
/// A request for the peer's prekey bundle.
public typealias BundleRequest = Privatus_Wire_V1_BundleRequest
/// The answer to a ``BundleRequest``.
public typealias BundleResponse = Privatus_Wire_V1_BundleResponse
/// A request to send a run of numbered chat messages again (a gap in their order).
public typealias ResendRequest = Privatus_Wire_V1_ResendRequest
public typealias FileWant = Privatus_Wire_V1_FileWant
public typealias FileChunk = Privatus_Wire_V1_FileChunk
/// A prekey bundle as it travels.
public typealias WirePrekeyBundle = Privatus_Wire_V1_PrekeyBundle
/// A signed public key as it travels.
public typealias WireSignedKey = Privatus_Wire_V1_SignedKey
/// A one-time prekey as it travels.
public typealias WireOneTimeKey = Privatus_Wire_V1_OneTimeKey
/// The plaintext inside a chat message's end-to-end encryption.
public typealias ChatContent = Privatus_Content_V1_ChatContent
public typealias FileOffer = Privatus_Content_V1_FileOffer
public typealias FileUpdate = Privatus_Content_V1_FileUpdate

extension Envelope {
    /// The message an envelope carries.
    public typealias Body = OneOf_Body

    /// An envelope of the current version (``WireLimits/currentVersion``) carrying `body`.
    public init(_ body: Body) {
        self.init()
        self.version = WireLimits.currentVersion
        self.body = body
    }
}

extension Envelope.Body {
    /// The kinds this node knows: the field numbers of `Envelope`'s `body`.
    public static let knownKinds: Set<UInt32> = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 32, 33]

    /// The kind of the message: its field number in `Envelope`, as ``ErrorReply`` names it.
    public var kind: UInt32 {
        switch self {
        case .ping: 2
        case .pong: 3
        case .errorReply: 4
        case .chatMessage: 5
        case .receipt: 6
        case .signedObject: 7
        case .hello: 8
        case .bundleRequest: 9
        case .bundleResponse: 10
        case .resendRequest: 11
        case .fileWant: 32
        case .fileChunk: 33
        }
    }
}

extension FileWant {
    /// The most chunk indexes one request may name.
    public static let maximumChunks = 64
    /// A transfer id's length.
    public static let transferIDBytes = 16
}

extension FileChunk {
    /// The largest sealed chunk a link message may carry: a 256 KiB chunk and the AEAD's nonce
    /// and tag (the chunk size this implementation sends; larger ones need a larger link
    /// maximum).
    public static let maximumSealedBytes = (256 << 10) + 28
}

extension ResendRequest {
    /// The most message numbers one request may name.
    public static let maximumSpan: UInt64 = 4_096

    /// A request for the messages numbered `first` through `last`.
    public init(first: UInt64, last: UInt64) {
        self.init()
        self.first = first
        self.last = last
    }
}

extension Ping {
    /// A ping with the given nonce.
    public init(nonce: UInt64) {
        self.init()
        self.nonce = nonce
    }
}

extension Pong {
    /// A pong answering the ping with the given nonce.
    public init(nonce: UInt64) {
        self.init()
        self.nonce = nonce
    }
}

extension ErrorReply {
    /// A refusal with the given code, about a message of the given kind (0: not known).
    public init(code: Code, kind: UInt32) {
        self.init()
        self.code = code
        self.kind = kind
    }
}

extension ChatMessage {
    /// The length of a message id.
    public static let messageIDBytes = 16

    /// A chat message.
    ///
    /// - Parameters:
    ///   - messageID: 16 random bytes naming the message (checked when encoded and decoded).
    ///   - sealed: The Double Ratchet message.
    ///   - sessionStart: Whether `sealed` begins with the PQXDH initial header.
    public init(messageID: [UInt8], sealed: [UInt8], sessionStart: Bool = false) {
        self.init()
        self.messageID = Data(messageID)
        self.sealed = Data(sealed)
        self.sessionStart = sessionStart
    }
}

extension Receipt {
    /// The most message ids one receipt carries.
    public static let maximumMessageIDs = 256

    /// A receipt for the chat messages with the given 16-byte ids.
    public init(messageIDs: [[UInt8]], state: State) {
        self.init()
        self.messageIds = messageIDs.map { Data($0) }
        self.state = state
    }
}

extension SignedObject {
    /// A signed object: `body` exactly as signed, its signature, and the purpose's number.
    public init(body: [UInt8], signature: [UInt8], purpose: UInt32) {
        self.init()
        self.body = Data(body)
        self.signature = Data(signature)
        self.purpose = purpose
    }
}

extension Hello {
    /// The most addresses a hello carries.
    public static let maximumAddresses = 8
    /// The longest address accepted, in bytes.
    public static let maximumAddressBytes = 64

    /// A hello naming the sender's listen addresses.
    public init(listenAddresses: [String]) {
        self.init()
        self.listenAddresses = listenAddresses
    }
}

extension ChatContent {
    /// The longest text a chat message carries, in UTF-8 bytes.
    public static let maximumTextBytes = 64 * 1024
    /// The longest display name a chat message carries, in UTF-8 bytes.
    public static let maximumNameBytes = 64
}
