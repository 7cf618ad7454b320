import Foundation
import PrivatusCore

/// A contact's standing.
public enum ContactState: Int, Sendable, Hashable {
    case contact = 0
    case request = 1
    case blocked = 2
}

/// A contact as the store returns it.
public struct Contact: Sendable, Hashable {
    /// The most addresses kept for a contact.
    public static let maximumAddresses = 8

    public var peerID: PeerID
    /// The contact's Ed25519 identity key; empty until learned (an invite carries only the
    /// PeerID, the key's digest: the first authenticated link fills it in).
    public var identityKey: [UInt8]
    public var name: String
    public var state: ContactState
    public var verified: Bool
    /// Where the contact's node was last reachable ("host:port"), most recent first.
    public var addresses: [String]
    /// When a link with the contact last authenticated, Unix milliseconds.
    public var lastSeen: UInt64?
    /// The secret the contact gave this node to find its presence records (32 bytes; empty
    /// until its first hello carrying one).
    public var presenceSecret: [UInt8]
    public static let presenceSecretBytes = 32

    public init(
        peerID: PeerID, identityKey: [UInt8], name: String, state: ContactState, verified: Bool = false,
        addresses: [String] = [], lastSeen: UInt64? = nil, presenceSecret: [UInt8] = []
    ) {
        self.presenceSecret = presenceSecret
        self.peerID = peerID
        self.identityKey = identityKey
        self.name = name
        self.state = state
        self.verified = verified
        self.addresses = addresses
        self.lastSeen = lastSeen
    }
}

/// A message's delivery state, with the names of CLI.md.
public enum MessageState: Int, Sendable, Hashable, CaseIterable {
    case queued = 0
    case sent = 1
    case storedForLater = 2
    case delivered = 3
    case read = 4
    case failed = 5

    /// The name CLI.md uses.
    public var name: String {
        switch self {
        case .queued: "queued"
        case .sent: "sent"
        case .storedForLater: "stored_for_later"
        case .delivered: "delivered"
        case .read: "read"
        case .failed: "failed"
        }
    }
}

/// Whether this user sent or received a message.
public enum MessageDirection: Int, Sendable, Hashable {
    case sent = 0
    case received = 1
}

/// A message to store.
public struct NewMessage: Sendable, Hashable {
    /// The message's 16-byte id: a received message keeps the id its sender chose (receipts
    /// name it); nil lets the store choose one at random.
    public var id: [UInt8]?
    /// The other party of the 1:1 conversation.
    public var peer: PeerID
    public var direction: MessageDirection
    public var state: MessageState
    public var sender: PeerID
    /// Unix milliseconds.
    public var sentAt: UInt64
    public var receivedAt: UInt64?
    public var body: String
    public var replyTo: [UInt8]?
    public var expiresAt: UInt64?
    /// The sender's number for the message in the conversation (1, 2, 3, …; 0: not numbered).
    /// A sent message's number waits with it in the outbox (it is encrypted again with the same
    /// number); a received one decides when it is shown (docs/PROTOCOL.md, "Order and gaps").
    public var number: UInt64
    /// A received message that started a new session: its sender has nothing older to send, so
    /// numbers before this one are not waited for.
    public var startsSession: Bool
    /// What the message carries besides its text (a file offer or update, encoded by the
    /// messaging layer; at most 4 KiB), sealed with it.
    public var attachment: [UInt8]? = nil

    public init(
        peer: PeerID, direction: MessageDirection, state: MessageState, sender: PeerID, sentAt: UInt64,
        receivedAt: UInt64? = nil, body: String, replyTo: [UInt8]? = nil, expiresAt: UInt64? = nil,
        id: [UInt8]? = nil, number: UInt64 = 0, startsSession: Bool = false
    ) {
        self.id = id
        self.number = number
        self.startsSession = startsSession
        self.peer = peer
        self.direction = direction
        self.state = state
        self.sender = sender
        self.sentAt = sentAt
        self.receivedAt = receivedAt
        self.body = body
        self.replyTo = replyTo
        self.expiresAt = expiresAt
    }
}

/// A stored message, decrypted.
public struct StoredMessage: Sendable, Hashable {
    /// The message's random 16-byte id.
    public var id: [UInt8]
    /// Its position in the conversation (0, 1, 2, …).
    public var sequence: Int64
    public var direction: MessageDirection
    public var state: MessageState
    public var sender: PeerID
    public var sentAt: UInt64
    public var receivedAt: UInt64?
    public var body: String
    public var replyTo: [UInt8]?
    public var expiresAt: UInt64?
    /// See ``NewMessage/attachment``.
    public var attachment: [UInt8]? = nil
}
