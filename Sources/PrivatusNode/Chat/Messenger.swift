import Crypto
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
import PrivatusDHT
import PrivatusNet
import PrivatusStore
import PrivatusWire

/// Contacts and 1:1 chat on top of the store, the sessions and the links (docs/PROTOCOL.md,
/// "Chat").
///
/// Every step that reads a peer's sessions, advances them and commits the result runs inside
/// this actor without suspending in between, so a message sent and one received at the same
/// time never both start from the same session state. What leaves the node was committed first:
/// a send stores the ciphertext in the outbox before the link sees it, a received message is
/// stored (with its sessions) before its receipt goes out.
public actor Messenger {
    /// How long a bundle request waits for its answer.
    static let bundleTimeout = Duration.seconds(10)
    /// The first retry of an unacknowledged message (ms); each further one waits twice as long,
    /// up to `maximumRetryInterval`.
    let firstRetryInterval: UInt64
    let maximumRetryInterval: UInt64
    /// Whether marking messages read tells their sender (a user's choice, `readReceipts`).
    let sendsReadReceipts: Bool
    /// How long (ms) a message may wait for its receipt before it is `failed`.
    let deliveryDeadline: UInt64
    /// How long (ms) a gap in a peer's message numbers stays open before the missing messages
    /// are asked for again, and before what waits behind it is shown anyway.
    let gapResend: UInt64
    let gapRelease: UInt64
    /// Peers with messages held behind a gap (loaded from the store at start).
    var gapsOpen: Set<PeerID> = []
    /// When each peer was last asked to resend (ms), and when a peer's request was last served.
    var lastResendRequest: [PeerID: UInt64] = [:]
    var lastResendServed: [PeerID: UInt64] = [:]
    /// The number the next message to each peer gets (read from the store on first use).
    var nextNumbers: [PeerID: UInt64] = [:]
    /// Send batches taken so far (``outgoingSettled()`` reads it).
    var sendBatchesTaken = 0

    let store: Store
    let keys: IdentityKeys
    let name: String
    let logger: Logger
    var links: ConnectionManager?
    var advertised: [String] = []
    var prekeys: PrekeyStore
    var nextRequestID: UInt64 = 1
    var pendingBundles: [UInt64: (peer: PeerID, continuation: CheckedContinuation<PrekeyBundle, any Error>)] =
        [:]
    var delivering: Set<PeerID> = []
    var redeliver: Set<PeerID> = []
    /// Peers whose next delivery sends everything waiting, not only what is due: a link to them
    /// just came up.
    var deliverEverything: Set<PeerID> = []
    var dialling: Set<PeerID> = []
    /// Finds a peer's addresses in the DHT (``attachAddressFinder(_:)``), and when each peer was
    /// last looked up (Unix ms).
    var findAddresses: (@Sendable (Contact) async -> [String]?)?
    var ownPresenceSecret: PresenceSecret?
    static let presenceSecretSetting = "presence-secret"
    var lastAddressLookup: [PeerID: UInt64] = [:]
    /// The least time between two DHT lookups of one peer's addresses (ms).
    static let addressLookupInterval: UInt64 = 30_000
    static let maximumRememberedLookups = 4_096
    /// The node's file transfers (``attachFiles(_:)``).
    var files: FileTransfers?
    /// The link each peer's messages last went over (used while it stays open).
    var openLinks: [PeerID: Link] = [:]
    /// The addresses the last hello of each linked peer named, for a peer that becomes a
    /// contact or request after its hello (at most ``maximumRememberedHellos`` peers).
    var helloAddresses: [PeerID: [String]] = [:]
    /// Bumped when sessions with a peer restart: a delivery in progress stops sending what it
    /// read before.
    var sessionGenerations: [PeerID: Int] = [:]
    /// When sessions with each peer last restarted (Unix ms): at most one restart per retry
    /// interval, so the peer's answers about the old session do not restart the new one.
    var lastRestart: [PeerID: UInt64] = [:]
    /// Messages handed to each peer's link whose attempts are not recorded yet, by message id
    /// (``noteAttempts(_:peer:)``).
    var unrecordedAttempts: [PeerID: [[UInt8]: UnrecordedAttempt]] = [:]
    /// The peers whose every due outbox entry is on its way (in ``unrecordedAttempts``): a
    /// pass for new messages sends them as committed, without reading the outbox
    /// (``deliverReady(to:over:onlyNew:)``). A peer leaves it on every other reason to deliver,
    /// a pass that may stop part way, and a failure to record attempts, so that an entry due
    /// again is read again.
    var caughtUp: Set<PeerID> = []
    var attemptRecordingScheduled = false
    /// One-time prekeys handed out since start: each goes to one requester.
    var handedOutPrekeys: Set<UInt32> = []
    static let maximumRememberedHellos = 1_024
    /// What strangers can make the node store: messages per message request until it is
    /// accepted, and message requests in all. Past them, their messages are dropped without a
    /// receipt (the sender sees them `sent`, then `failed` at its deadline).
    static let maximumMessagesPerRequest = 100
    static let maximumRequests = 1_000
    /// A contact's `lastSeen` moves with its messages at most this often (ms); a new link sets
    /// it at once.
    static let lastSeenResolution: UInt64 = 60_000
    let counters = ChatCounters()
    /// One element per arrival in either queue: wakes ``runQueues()``.
    nonisolated let work: AsyncStream<Void>
    /// Chat messages received, waiting to be committed in batches.
    nonisolated let inbox: ChatInbox
    /// Send requests, waiting to be committed in batches.
    nonisolated let outgoing: SendQueue
    /// What `watch` shows.
    public nonisolated let events: NodeEvents

    /// Opens the messenger on `store`, creating the profile's prekeys on first use.
    public init(
        store: Store, keys: IdentityKeys, name: String, retry: (initial: UInt64, maximum: UInt64) = (30_000, 900_000),
        readReceipts: Bool = true, deliveryDeadline: UInt64 = 7 * 24 * 3_600_000,
        gaps: (resend: UInt64, release: UInt64) = (2_000, 60_000), events: NodeEvents = NodeEvents(), logger: Logger
    ) throws {
        let (work, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.work = work
        self.inbox = ChatInbox(wake: wake)
        self.outgoing = SendQueue(wake: wake)
        self.deliveryDeadline = deliveryDeadline
        self.gapResend = gaps.resend
        self.gapRelease = max(gaps.resend, gaps.release)
        self.gapsOpen = Set(try store.peersWithGaps())
        self.events = events
        self.sendsReadReceipts = readReceipts
        self.firstRetryInterval = retry.initial
        self.maximumRetryInterval = max(retry.initial, retry.maximum)
        self.store = store
        self.keys = keys
        self.name = name
        self.logger = logger
        let now = Self.unixSeconds()
        if var prekeys = try store.prekeys() {
            if try prekeys.maintain(identity: keys.identity, now: now) { try store.savePrekeys(prekeys) }
            self.prekeys = prekeys
        } else {
            let prekeys = try PrekeyStore(identity: keys.identity, now: now)
            try store.savePrekeys(prekeys)
            self.prekeys = prekeys
        }
        counters.observe(self.prekeys)
    }

    /// Connects the messenger to the node's links and the addresses it tells peers.
    public func attach(_ links: ConnectionManager, advertising addresses: [String]) {
        self.links = links
        self.advertised = Array(addresses.prefix(Hello.maximumAddresses))
    }

    /// Connects the messenger to the node's file transfers (offers and updates arrive as chat
    /// messages).
    public func attachFiles(_ files: FileTransfers) {
        self.files = files
    }

    /// Where to look for a contact none of whose known addresses answers (the DHT): a contact
    /// added by PeerID alone, or one that moved.
    public func attachAddressFinder(_ finder: @escaping @Sendable (Contact) async -> [String]?) {
        findAddresses = finder
    }

    /// This node's presence secret (docs/PROTOCOL.md, "Presence"): drawn and kept as the setting
    /// `presence-secret` on first use, given to contacts in every hello.
    public func presenceSecret() throws -> PresenceSecret {
        if let ownPresenceSecret { return ownPresenceSecret }
        let secret: PresenceSecret
        if let bytes = try store.setting(Self.presenceSecretSetting), let stored = PresenceSecret(bytes: bytes) {
            secret = stored
        } else {
            secret = PresenceSecret()
            try store.setSetting(Self.presenceSecretSetting, to: secret.bytes)
        }
        ownPresenceSecret = secret
        return secret
    }

    /// A new presence secret, after a contact was removed or blocked: that peer cannot follow
    /// the node past the records already published; the contacts linked now hear it at once,
    /// the others in their next hello.
    func renewPresenceSecret() throws {
        let secret = PresenceSecret()
        try store.setSetting(Self.presenceSecretSetting, to: secret.bytes)
        ownPresenceSecret = secret
        for (peer, link) in openLinks where link.isActive {
            if (try? store.contact(peer))?.state == .contact { sendHello(over: link) }
        }
    }

    // MARK: - Contacts

    /// Adds the invite's PeerID as a contact (or accepts it if it was a message request, or
    /// refreshes its addresses if it was one already) and starts connecting to it.
    public func addContact(_ invite: Invite, name: String?) throws -> Contact {
        guard invite.peerID != keys.identity.publicKey.peerID else { throw ChatError.cannotAddSelf }
        if let name { try Self.checkName(name) }
        var contact =
            try store.contact(invite.peerID)
            ?? Contact(
                peerID: invite.peerID, identityKey: [], name: Self.defaultName(for: invite.peerID), state: .contact)
        contact.state = .contact
        if let name { contact.name = name }
        contact.addresses = Self.merge(
            invite.addresses + (helloAddresses[invite.peerID] ?? []), into: contact.addresses)
        try store.saveContact(contact)
        startDialling(contact.peerID)
        greetIfLinked(contact.peerID)
        return contact
    }

    /// Contacts (state `contact`) or message requests, in the order they were added.
    public func contacts(_ state: ContactState) throws -> [Contact] {
        try store.contacts().filter { $0.state == state }
    }

    /// Whether a request's display name looks like that of an existing contact with another
    /// PeerID (compared after ``comparable(_:)``): shown as a possible impersonation.
    public func possibleImpersonation(_ request: Contact) throws -> Bool {
        try impersonationCheck()(request)
    }

    /// A check of requests against the contacts as they are now (read once for many requests).
    func impersonationCheck() throws -> (Contact) -> Bool {
        let contacts = try store.contacts().filter { $0.state == .contact }
        let names = Dictionary(grouping: contacts, by: { Self.comparable($0.name) }).mapValues { Set($0.map(\.peerID)) }
        return { request in
            guard let holders = names[Self.comparable(request.name)] else { return false }
            return !holders.subtracting([request.peerID]).isEmpty
        }
    }

    /// A name as compared for impersonation: compatibility-normalized (NFKC), case, width and
    /// diacritics folded, without whitespace, control or format characters ("Alice", "alice ",
    /// "ａｌｉｃｅ" and "ali\u{200B}ce" compare equal). Look-alike letters of other scripts
    /// (Cyrillic "а" for Latin "a") are not caught: that needs Unicode's confusables data.
    static func comparable(_ name: String) -> String {
        let folded = name.precomposedStringWithCompatibilityMapping.folding(
            options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: nil)
        return String(
            String.UnicodeScalarView(
                folded.unicodeScalars.filter { scalar in
                    !scalar.properties.isWhitespace
                        && ![.control, .format].contains(scalar.properties.generalCategory)
                }))
    }

    /// Finds a contact, request or blocked peer by PeerID or (for contacts) by name.
    /// - Throws: ``ChatError/unknownPeer`` or ``ChatError/ambiguousName``.
    public func resolve(_ reference: String) throws -> Contact {
        if let peer = try? PeerID(parsing: reference) {
            guard let contact = try store.contact(peer) else { throw ChatError.unknownPeer }
            return contact
        }
        let named = try store.contacts().filter { $0.state == .contact && $0.name == reference }
        guard named.count <= 1 else { throw ChatError.ambiguousName }
        guard let contact = named.first else { throw ChatError.unknownPeer }
        return contact
    }

    /// Moves a contact or request to `state` (accept: `contact`; block: `blocked`).
    public func setState(_ state: ContactState, of reference: String) throws -> Contact {
        var contact = try resolve(reference)
        let wasContact = contact.state == .contact
        contact.state = state
        try store.saveContact(contact)
        if state == .contact, !wasContact { greetIfLinked(contact.peerID) }
        if state == .blocked {
            failOutbox(for: contact.peerID)
            // A blocked contact, like a removed one, must not follow the node any further.
            if wasContact { try renewPresenceSecret() }
        }
        return contact
    }

    /// Removes a contact (its sessions go, the conversation stays).
    public func remove(_ reference: String) throws -> Contact {
        let contact = try resolve(reference)
        failOutbox(for: contact.peerID)
        try store.removeContact(contact.peerID)
        if contact.state == .contact { try renewPresenceSecret() }
        return contact
    }

    /// Nothing more goes to a blocked or removed peer: what waits for it becomes `failed`.
    func failOutbox(for peer: PeerID) {
        // A delivery pass in progress stops at its next run.
        sessionGenerations[peer, default: 0] += 1
        forgetAttempts(to: peer)
        do {
            for id in try store.failOutbox(for: peer) {
                events.publish(NodeEvent(type: "state", id: Hex.encode(id), peerId: peer.hex, state: "failed"))
            }
        } catch {
            logger.debug("outbox not cleared", metadata: ["error": "\(error)"])
        }
    }

    /// Marks a contact verified when `safetyNumber` is the safety number of the two identities
    /// (spaces ignored); refuses otherwise, and while the contact's identity key is not known.
    public func verify(_ reference: String, safetyNumber: String) throws -> Contact {
        var contact = try resolve(reference)
        guard let number = try self.safetyNumber(of: contact) else { throw ChatError.identityNotYetKnown }
        let given = safetyNumber.filter { !$0.isWhitespace }
        guard given == number.digits else { throw ChatError.safetyNumberMismatch }
        contact.verified = true
        try store.saveContact(contact)
        return contact
    }

    /// The safety number with a contact, once its identity key is known.
    public func safetyNumber(of contact: Contact) throws -> SafetyNumber? {
        guard !contact.identityKey.isEmpty, let remote = try? IdentityPublicKey(rawRepresentation: contact.identityKey)
        else { return nil }
        return SafetyNumber(local: keys.identity.publicKey, remote: remote)
    }

    // MARK: - Maintenance

    /// Rotates and refills the prekeys when due (the scheduler calls it).
    public func maintainPrekeys() throws {
        var next = prekeys
        if try next.maintain(identity: keys.identity, now: Self.unixSeconds()) {
            try store.savePrekeys(next)
            prekeys = next
        }
        counters.observe(prekeys)
    }

    /// The prekey bundle to publish (no one-time prekey: those come only over a link).
    public func publicBundle() -> PrekeyBundle {
        prekeys.bundle(keys: keys, withOneTimePrekey: false)
    }

    // MARK: - Helpers

    func content(_ text: String, file: FileMessage? = nil, sentAt: UInt64, number: UInt64) throws -> [UInt8] {
        try ChatContent.with {
            $0.version = 1
            switch file {
            case .offer(let offer): $0.fileOffer = offer
            case .update(let update): $0.fileUpdate = update
            case nil: $0.text = text
            }
            $0.sentAtMs = sentAt
            $0.number = number
            $0.senderName = String(decoding: Array(name.utf8.prefix(ChatContent.maximumNameBytes)), as: UTF8.self)
        }.serializedBytes()
    }

    static func chatEnvelope(id: [UInt8], sealed: [UInt8], sessionStart: Bool) throws -> [UInt8] {
        try WireCodec.encode(
            Envelope(.chatMessage(ChatMessage(messageID: id, sealed: sealed, sessionStart: sessionStart))))
    }

    /// Newest first, without duplicates, at most ``Contact/maximumAddresses``.
    static func merge(_ new: [String], into old: [String]) -> [String] {
        var seen = Set<String>()
        return (new + old).filter { seen.insert($0).inserted }.prefix(Contact.maximumAddresses).map { $0 }
    }

    /// 1 to 64 bytes, without control or format characters (bidi overrides, zero-width joiners
    /// and the like could disguise a name) and not only whitespace.
    static func checkName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= ChatContent.maximumNameBytes,
            !name.unicodeScalars.contains(where: { [.control, .format].contains($0.properties.generalCategory) }),
            name.contains(where: { !$0.isWhitespace })
        else { throw ChatError.badName }
    }

    /// The largest `sealed` a valid chat message has: a PQXDH header and a ratchet message whose
    /// padded plaintext holds the longest text and name (and the content's own framing).
    static let maximumSealedBytes =
        InitialHeader.encodedSize + RatchetHeader.encodedSize
        + Padding.bucket(for: ChatContent.maximumTextBytes + ChatContent.maximumNameBytes + 64) + 16

    /// A request's name: the one its sender gave, when usable, else a short PeerID.
    static func displayName(_ given: String, for peer: PeerID) -> String {
        (try? checkName(given)) != nil ? given : defaultName(for: peer)
    }

    static func defaultName(for peer: PeerID) -> String { String(peer.hex.prefix(8)) }

    static func unixMilliseconds() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
    static func unixSeconds() -> UInt64 { UInt64(Date().timeIntervalSince1970) }
}

/// A message handed to a link: when to retry it, and when to record the attempt.
struct UnrecordedAttempt: Sendable {
    var nextTry: UInt64
    var recordAt: ContinuousClock.Instant
}

/// The chat layer's metrics (no PeerIDs or addresses in labels).
struct ChatCounters: Sendable {
    /// Chat messages handed to a link (first sends and retries).
    let attempts = Counter(label: "privatus_chat_send_attempts_total")
    /// Own messages committed to be sent (text and file messages).
    let sent = Counter(label: "privatus_chat_sent_total")
    /// Own messages acknowledged by the recipient's node (delivered, or read at once).
    let delivered = Counter(label: "privatus_chat_delivered_total")
    /// Own messages that passed their delivery deadline.
    let failed = Counter(label: "privatus_chat_failed_total")
    /// Chat content bytes encrypted and decrypted by the Double Ratchet.
    let encryptedBytes = Counter(label: "privatus_chat_encrypted_bytes_total")
    let decryptedBytes = Counter(label: "privatus_chat_decrypted_bytes_total")
    /// Received messages stored (duplicates not counted).
    let received = Counter(label: "privatus_chat_received_total")
    /// Own messages moved to delivered or read by a receipt.
    let receipts = Counter(label: "privatus_chat_receipts_total")
    /// Inbound chat-layer messages dropped (undecryptable, malformed, replayed…).
    let refused = Counter(label: "privatus_chat_refused_total")
    /// Sessions with a peer dropped and started again because it could not decrypt.
    let restarts = Counter(label: "privatus_chat_session_restarts_total")
    /// Gaps in a peer's message numbers asked about, and given up.
    let resendRequests = Counter(label: "privatus_chat_resend_requests_total")
    let gapsGivenUp = Counter(label: "privatus_chat_gaps_given_up_total")
    /// First messages recorded for the current signed prekey (alert near its early-rotation
    /// mark: a flood), and unused one-time prekeys.
    let replayCache = Gauge(label: "privatus_prekeys_replay_cache_entries")
    let oneTimePrekeys = Gauge(label: "privatus_prekeys_one_time")

    func observe(_ prekeys: PrekeyStore) {
        replayCache.record(prekeys.replayCacheEntries)
        oneTimePrekeys.record(prekeys.oneTimeCount)
    }
}
