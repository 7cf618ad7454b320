import Crypto
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import PrivatusCore
import PrivatusCrypto
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

    let store: Store
    let keys: IdentityKeys
    let name: String
    let logger: Logger
    private var links: ConnectionManager?
    private var advertised: [String] = []
    private var prekeys: PrekeyStore
    private var nextRequestID: UInt64 = 1
    private var pendingBundles: [UInt64: (peer: PeerID, continuation: CheckedContinuation<PrekeyBundle, any Error>)] =
        [:]
    private var delivering: Set<PeerID> = []
    private var redeliver: Set<PeerID> = []
    /// Peers whose next delivery sends everything waiting, not only what is due: a link to them
    /// just came up.
    private var deliverEverything: Set<PeerID> = []
    private var dialling: Set<PeerID> = []
    /// The addresses the last hello of each linked peer named, for a peer that becomes a
    /// contact or request after its hello (at most ``maximumRememberedHellos`` peers).
    private var helloAddresses: [PeerID: [String]] = [:]
    /// Bumped when sessions with a peer restart: a delivery in progress stops sending what it
    /// read before.
    private var sessionGenerations: [PeerID: Int] = [:]
    /// When sessions with each peer last restarted (Unix ms): at most one restart per retry
    /// interval, so the peer's answers about the old session do not restart the new one.
    private var lastRestart: [PeerID: UInt64] = [:]
    /// One-time prekeys handed out since start: each goes to one requester.
    private var handedOutPrekeys: Set<UInt32> = []
    static let maximumRememberedHellos = 1_024
    /// What strangers can make the node store: messages per message request until it is
    /// accepted, and message requests in all. Past them, their messages are dropped without a
    /// receipt (the sender sees them `sent`, then `failed` at its deadline).
    static let maximumMessagesPerRequest = 100
    static let maximumRequests = 1_000
    let counters = ChatCounters()
    /// Chat messages received, waiting to be committed in batches.
    nonisolated let inbox = ChatInbox()
    /// Send requests, waiting to be committed in batches.
    nonisolated let outgoing = SendQueue()
    /// What `watch` shows.
    public nonisolated let events: NodeEvents

    /// Opens the messenger on `store`, creating the profile's prekeys on first use.
    public init(
        store: Store, keys: IdentityKeys, name: String, retry: (initial: UInt64, maximum: UInt64) = (30_000, 900_000),
        readReceipts: Bool = true, deliveryDeadline: UInt64 = 7 * 24 * 3_600_000, events: NodeEvents = NodeEvents(),
        logger: Logger
    ) throws {
        self.deliveryDeadline = deliveryDeadline
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
        if state == .blocked { failOutbox(for: contact.peerID) }
        return contact
    }

    /// Removes a contact (its sessions go, the conversation stays).
    public func remove(_ reference: String) throws -> Contact {
        let contact = try resolve(reference)
        failOutbox(for: contact.peerID)
        try store.removeContact(contact.peerID)
        return contact
    }

    /// Nothing more goes to a blocked or removed peer: what waits for it becomes `failed`.
    private func failOutbox(for peer: PeerID) {
        // A delivery pass in progress stops at its next run.
        sessionGenerations[peer, default: 0] += 1
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

    // MARK: - Sending

    /// Queues a text message to a contact and returns it as stored (`queued`); delivery runs in
    /// the background. Requests that arrive together are committed together (``runOutgoing()``).
    public nonisolated func send(_ text: String, to reference: String) async throws -> StoredMessage {
        try await outgoing.submit(text, to: reference)
    }

    /// Encrypts and commits queued send requests, batch after batch, until the node stops.
    public func runOutgoing() async {
        for await _ in outgoing.arrivals {
            while true {
                let batch = outgoing.take(256)
                guard !batch.isEmpty else { break }
                sendBatch(batch)
                await Task.yield()
            }
        }
    }

    /// Stops taking send requests (those waiting are refused).
    public nonisolated func stopOutgoing() { outgoing.finish() }

    /// Checks, encrypts (advancing each peer's sessions in memory, in request order) and commits
    /// a batch of send requests in one transaction; answers each request. Runs without
    /// suspending, so no received message interleaves with the sessions it advances.
    private func sendBatch(_ requests: [SendQueue.Request]) {
        let now = Self.unixMilliseconds()
        var sessions: [PeerID: PeerSessions] = [:]
        var items: [(message: NewMessage, ciphertext: [UInt8])] = []
        var answers: [CheckedContinuation<StoredMessage, any Error>] = []
        var resolved: [String: Contact] = [:]  // a batch usually names few peers, many times
        for request in requests {
            do {
                guard !request.text.isEmpty else { throw ChatError.emptyMessage }
                guard request.text.utf8.count <= ChatContent.maximumTextBytes else { throw ChatError.messageTooLong }
                let contact = try resolved[request.reference] ?? resolve(request.reference)
                resolved[request.reference] = contact
                guard contact.state == .contact else { throw ChatError.notAContact }
                let peer = contact.peerID
                let id = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
                let message = NewMessage(
                    peer: peer, direction: .sent, state: .queued, sender: keys.identity.publicKey.peerID, sentAt: now,
                    body: request.text, id: id)
                let current = try sessions[peer] ?? store.sessions(with: peer)
                var wire: [UInt8] = []  // empty: waits for a session (the bundle is fetched when delivering)
                if current.sessions.contains(where: \.canSend) {
                    let (advanced, ratchet) = try current.encrypting(try content(request.text, sentAt: now))
                    wire = try Self.chatEnvelope(id: id, sealed: ratchet.encoded, sessionStart: false)
                    sessions[peer] = advanced
                } else {
                    sessions[peer] = current
                }
                items.append((message, wire))
                answers.append(request.answer)
            } catch {
                request.answer.resume(throwing: error)
            }
        }
        guard !items.isEmpty else { return }
        do {
            let stored = try store.commitOutgoing(
                items, sessions: sessions, nextTry: now, deadline: now + deliveryDeadline)
            for (answer, message) in zip(answers, stored) { answer.resume(returning: message) }
        } catch {
            for answer in answers { answer.resume(throwing: error) }
            return
        }
        for peer in sessions.keys { scheduleDelivery(to: peer) }
    }

    /// The latest `limit` messages with a peer (before the message `before`), oldest first.
    public func messages(with reference: String, limit: Int, before: [UInt8]?) throws -> [StoredMessage] {
        let contact = try resolve(reference)
        var sequence: Int64?
        if let before {
            guard let found = try store.message(id: before), found.peer == contact.peerID else {
                throw ChatError.unknownMessage
            }
            sequence = found.message.sequence
        }
        return try store.latestMessages(with: contact.peerID, limit: limit, before: sequence)
    }

    /// Marks the peer's messages read; with read receipts on, tells the peer's node (in batches
    /// of at most 256 ids, over its open link; read receipts are not retried). Returns how many
    /// messages changed.
    public func markRead(_ reference: String) throws -> Int {
        let contact = try resolve(reference)
        let ids = try store.markRead(from: contact.peerID)
        if sendsReadReceipts, !ids.isEmpty, contact.state == .contact, let links {
            let batches = stride(from: 0, to: ids.count, by: Receipt.maximumMessageIDs).map {
                Array(ids[$0..<min($0 + Receipt.maximumMessageIDs, ids.count)])
            }
            Task {
                guard let link = await links.link(to: contact.peerID) else { return }
                for batch in batches {
                    try? await link.send(.receipt(Receipt(messageIDs: batch, state: .read)), on: .chat)
                }
            }
        }
        return ids.count
    }

    /// Requeues a `failed` message (`privatus retry`): queued again, with a new deadline, and
    /// delivered as soon as its peer is reachable.
    public func retry(_ messageID: [UInt8]) throws -> StoredMessage {
        let now = Self.unixMilliseconds()
        let peer: PeerID
        do {
            peer = try store.retry(messageID: messageID, now: now, deadline: now + deliveryDeadline)
        } catch StoreError.notFound {
            throw ChatError.notRetryable
        }
        events.publish(NodeEvent(type: "state", id: Hex.encode(messageID), peerId: peer.hex, state: "queued"))
        scheduleDelivery(to: peer)
        guard let stored = try store.message(id: messageID)?.message else { throw ChatError.unknownMessage }
        return stored
    }

    /// Tries every peer with messages due in the outbox (the scheduler calls it periodically).
    public func deliverDue() {
        do {
            for (id, peer) in try store.failOverdue(now: Self.unixMilliseconds()) {
                events.publish(NodeEvent(type: "state", id: Hex.encode(id), peerId: peer.hex, state: "failed"))
            }
        } catch {
            logger.debug("overdue messages not failed", metadata: ["error": "\(error)"])
        }
        if let waiting = try? store.outboxCount() { counters.outbox.record(waiting) }
        guard let peers = try? store.peersWithDueOutbox(dueBy: Self.unixMilliseconds()) else { return }
        for peer in peers { scheduleDelivery(to: peer) }
    }

    /// - Parameter everything: send every waiting message, due or not (the peer's link just came
    ///   up: whatever was sent on an earlier link may have been lost with it, and what was put off
    ///   because the peer was away can go now).
    func scheduleDelivery(to peer: PeerID, everything: Bool = false) {
        if everything { deliverEverything.insert(peer) }
        guard !delivering.contains(peer) else {
            redeliver.insert(peer)
            return
        }
        delivering.insert(peer)
        Task { await self.deliver(to: peer) }
    }

    /// Sends `peer`'s due outbox entries in order over its link (dialling it if needed), stopping
    /// at the first that cannot go: a later message must not overtake an earlier one. A peer that
    /// cannot be reached, or whose bundle cannot be fetched, is tried again a retry interval later.
    private func deliver(to peer: PeerID) async {
        defer {
            delivering.remove(peer)
            if redeliver.remove(peer) != nil { scheduleDelivery(to: peer) }
        }
        do {
            // Only contacts are written to: a blocked or removed peer's messages left the outbox.
            guard try store.contact(peer)?.state == .contact else { return }
            let everything = deliverEverything.remove(peer) != nil
            // Everything waiting: all but failed messages, whose entries are never due.
            let horizon = everything ? UInt64(Store.neverDue - 1) : Self.unixMilliseconds()
            let due = try store.outbox(for: peer, dueBy: horizon, limit: 1_000)
            guard !due.isEmpty else { return }
            guard let link = await link(to: peer) else {
                try store.deferOutbox(for: peer, until: Self.unixMilliseconds() + firstRetryInterval)
                return
            }
            let generation = sessionGenerations[peer, default: 0]
            // Attempts are recorded together once the pass ends (one commit, not one per
            // message); a receipt that comes first is applied first, and the state events still
            // walk queued → sent → delivered.
            var attempts: [(messageID: [UInt8], nextTry: UInt64)] = []
            defer {
                // After a restart the entries were emptied and made due: a new pass sends them,
                // in order; recording these attempts would put them off behind later messages.
                if sessionGenerations[peer, default: 0] == generation { recordAttempts(attempts, peer: peer) }
            }
            // Ready messages go to the link in runs (one hand-over per run, not per message).
            var run: [OutboxItem] = []
            var bytes: [[UInt8]] = []
            var index = due.startIndex
            while index < due.endIndex || !run.isEmpty {
                let item = index < due.endIndex ? due[index] : nil
                let mustFlush = item == nil || item?.ciphertext.isEmpty == true || run.count >= 256
                if mustFlush, !run.isEmpty {
                    // Sessions restarted meanwhile: what was read before is stale (a new
                    // delivery follows).
                    guard sessionGenerations[peer, default: 0] == generation else { return }
                    try await link.send(bytes.map { LinkMessage(stream: .chat, bytes: $0) })
                    counters.attempts.increment(by: run.count)
                    let sentAt = Self.unixMilliseconds()
                    for sent in run {
                        let delay = min(firstRetryInterval << min(UInt64(sent.attempts), 16), maximumRetryInterval)
                        attempts.append((sent.messageID, sentAt + delay))
                    }
                    run.removeAll()
                    bytes.removeAll()
                }
                guard let item else { break }
                index += 1
                if item.ciphertext.isEmpty {
                    guard sessionGenerations[peer, default: 0] == generation else { return }
                    let sealed: [UInt8]?
                    do {
                        sealed = try await sealAwaitingSession(item, over: link)
                    } catch {
                        try store.deferOutbox(for: peer, until: Self.unixMilliseconds() + firstRetryInterval)
                        throw error
                    }
                    guard let sealed else { continue }
                    run.append(item)
                    bytes.append(sealed)
                } else {
                    run.append(item)
                    bytes.append(item.ciphertext)
                }
            }
        } catch {
            logger.debug("delivery stopped", metadata: ["error": "\(error)"])
        }
    }

    private func recordAttempts(_ attempts: [(messageID: [UInt8], nextTry: UInt64)], peer: PeerID) {
        do {
            for id in try store.recordAttempts(attempts, peer: peer) {
                events.publish(NodeEvent(type: "state", id: Hex.encode(id), peerId: peer.hex, state: "sent"))
            }
        } catch {
            logger.debug("attempts not recorded", metadata: ["error": "\(error)"])
        }
    }

    /// The peer could not decrypt messages it was sent (it lost or removed the session, or
    /// refused a first message): when they are still in the outbox, drop the sessions and send
    /// them again in a new one.
    private func peerCouldNotDecrypt(_ ids: [[UInt8]], from peer: PeerID) throws {
        let waiting = Set(try store.outbox(for: peer, dueBy: .max, limit: 10_000).map(\.messageID))
        guard ids.contains(where: waiting.contains) else { return }
        let now = Self.unixMilliseconds()
        if let last = lastRestart[peer], now - last < firstRetryInterval { return }
        lastRestart[peer] = now
        try store.restartSessions(with: peer, now: now)
        sessionGenerations[peer, default: 0] += 1
        counters.restarts.increment()
        scheduleDelivery(to: peer)
    }

    /// Encrypts a message that was queued before there was a session: fetches the peer's bundle,
    /// then (without suspending again) starts a session, or uses one that appeared meanwhile,
    /// and commits the result. Returns the bytes to send, or nil if the message is gone.
    private func sealAwaitingSession(_ item: OutboxItem, over link: Link) async throws -> [UInt8]? {
        var sessions = try store.sessions(with: item.peer)
        var bundle: PrekeyBundle?
        if !sessions.sessions.contains(where: \.canSend) {
            bundle = try await fetchBundle(from: link)
            sessions = try store.sessions(with: item.peer)
        }
        guard let stored = try store.message(id: item.messageID)?.message else { return nil }
        let plaintext = try content(stored.body, sentAt: stored.sentAt)
        let wire: [UInt8]
        if sessions.sessions.contains(where: \.canSend) {
            let (advanced, ratchet) = try sessions.encrypting(plaintext)
            sessions = advanced
            wire = try Self.chatEnvelope(id: item.messageID, sealed: ratchet.encoded, sessionStart: false)
        } else {
            guard let bundle else { throw ChatError.noSession }
            guard bundle.peerID == item.peer else { throw ChatError.wrongBundle }
            var ratchetKeys = SystemRatchetKeys()
            let (session, first) = try SessionStart.initiate(
                keys: keys, bundle: bundle, firstPlaintext: plaintext, now: Self.unixSeconds(),
                ratchetKeys: &ratchetKeys)
            sessions = sessions.adding(session)
            wire = try Self.chatEnvelope(id: item.messageID, sealed: first, sessionStart: true)
        }
        do {
            try store.commitSealed(messageID: item.messageID, peer: item.peer, ciphertext: wire, sessions: sessions)
        } catch StoreError.notFound {
            return nil
        }
        return wire
    }

    /// Asks the peer at the end of `link` for its prekey bundle.
    private func fetchBundle(from link: Link) async throws -> PrekeyBundle {
        let id = nextRequestID
        nextRequestID += 1
        let peer = link.peer.peerID
        let timeout = Task {
            try await Task.sleep(for: Self.bundleTimeout)
            self.failBundleRequest(id, with: ChatError.bundleTimeout)
        }
        defer { timeout.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            pendingBundles[id] = (peer, continuation)
            Task {
                do {
                    try await link.send(.bundleRequest(.with { $0.requestID = id }), on: .control)
                } catch {
                    self.failBundleRequest(id, with: error)
                }
            }
        }
    }

    private func failBundleRequest(_ id: UInt64, with error: any Error) {
        pendingBundles.removeValue(forKey: id)?.continuation.resume(throwing: error)
    }

    // MARK: - Links

    /// The open link to `peer`, or a new one dialled at its known addresses (in order). A host
    /// name (from an invite) is resolved on NIO's blocking-work pool, never on this actor.
    private func link(to peer: PeerID) async -> Link? {
        guard let links else { return nil }
        if let open = await links.link(to: peer) { return open }
        guard let contact = try? store.contact(peer), contact.state == .contact else { return nil }
        for address in contact.addresses {
            guard let target = HostPort(parsing: address) else { continue }
            do {
                let socket: SocketAddress
                if let literal = target.socketAddress {
                    socket = literal
                } else {
                    socket = try await NIOThreadPool.singleton.runIfActive {
                        try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
                    }
                }
                return try await links.connect(to: peer, at: socket)
            } catch {
                logger.debug("dial failed", metadata: ["error": "\(error)"])
            }
        }
        return nil
    }

    /// Dials a contact in the background (its hello and the outbox follow once the link is up).
    func startDialling(_ peer: PeerID) {
        guard links != nil, !dialling.contains(peer) else { return }
        dialling.insert(peer)
        Task {
            _ = await self.link(to: peer)
            self.doneDialling(peer)
        }
    }

    private func doneDialling(_ peer: PeerID) { dialling.remove(peer) }

    /// Dials every contact with a known address (at start, so contacts learn where this node is
    /// now, and its outbox drains).
    public func dialContacts() throws {
        for contact in try store.contacts() where contact.state == .contact && !contact.addresses.isEmpty {
            startDialling(contact.peerID)
        }
    }

    /// A new link authenticated: note when the peer was seen (and its identity key, the first
    /// time), tell a contact where this node listens, and send what waits for the peer.
    public func linkEstablished(_ link: Link) async {
        let peer = link.peer
        var isContact = false
        do {
            if var contact = try store.contact(peer.peerID) {
                isContact = contact.state == .contact
                contact.lastSeen = Self.unixMilliseconds()
                if contact.identityKey.isEmpty { contact.identityKey = Array(peer.identity.rawRepresentation) }
                try store.saveContact(contact)
            }
        } catch {
            logger.debug("contact update failed", metadata: ["error": "\(error)"])
        }
        if isContact {
            sendHello(over: link)
            scheduleDelivery(to: peer.peerID, everything: true)
        }
    }

    /// Tells a contact where this node listens. Only contacts hear it: a stranger who reaches
    /// this node learns no more of its addresses (which can include LAN ones) than it dialled.
    private func sendHello(over link: Link) {
        let hello = Hello(listenAddresses: advertised)
        Task { try? await link.send(.hello(hello), on: .control) }
    }

    /// After a peer became a contact: its open link, if any, hears the hello now.
    private func greetIfLinked(_ peer: PeerID) {
        guard let links else { return }
        Task {
            if let link = await links.link(to: peer) { self.sendHello(over: link) }
        }
    }

    // MARK: - Receiving

    /// Handles a message from a peer's link. Chat messages go to the inbox (committed in
    /// batches by ``runInbox()``); the rest is handled at once.
    public nonisolated func receive(_ message: InboundMessage, from peer: LinkPeer, on link: Link?) async {
        switch message.body {
        case .chatMessage(let chat):
            // Larger than any valid chat message: refused before it is queued.
            guard chat.sealed.count <= Self.maximumSealedBytes else {
                counters.refused.increment()
                return
            }
            await inbox.put(ChatInbox.Item(body: message.body, peer: peer, link: link))
        case .receipt:
            // In its place after the chat messages before it (a restart must not drop sessions
            // that earlier messages still need).
            await inbox.put(ChatInbox.Item(body: message.body, peer: peer, link: link))
        default:
            await receiveNow(message.body, from: peer, on: link)
        }
    }

    /// Decrypts and commits what the inbox holds, batch after batch, until the node stops;
    /// yields between batches so that sends, API calls and bundle answers are not held back.
    public func runInbox() async {
        for await _ in inbox.arrivals {
            while true {
                let batch = inbox.take(Receipt.maximumMessageIDs)
                guard !batch.isEmpty else { break }
                // Per sender, in arrival order; a receipt ends the run of chat messages before it.
                var order: [PeerID] = []
                var bySender: [PeerID: [ChatInbox.Item]] = [:]
                for item in batch {
                    if bySender[item.peer.peerID] == nil { order.append(item.peer.peerID) }
                    bySender[item.peer.peerID, default: []].append(item)
                }
                for sender in order {
                    var chats: [(chat: ChatMessage, link: Link?)] = []
                    for item in bySender[sender] ?? [] {
                        if case .chatMessage(let chat) = item.body {
                            chats.append((chat, item.link))
                        } else {
                            receiveChats(chats, from: item.peer)
                            chats.removeAll()
                            receiveNow(item.body, from: item.peer, on: item.link)
                        }
                    }
                    if let peer = bySender[sender]?.first?.peer { receiveChats(chats, from: peer) }
                }
                await Task.yield()
            }
        }
    }

    /// Stops the inbox's drain loop.
    public nonisolated func stopInbox() { inbox.finish() }

    private func receiveNow(_ body: Envelope.Body, from peer: LinkPeer, on link: Link?) {
        do {
            switch body {
            case .hello(let hello):
                try receiveHello(hello, from: peer)
            case .bundleRequest(let request):
                guard try store.contact(peer.peerID)?.state != .blocked else { return }
                let bundle = prekeys.bundle(keys: keys, oneTimePrekeyNotIn: handedOutPrekeys)
                if let oneTime = bundle.oneTimePrekey { handedOutPrekeys.insert(oneTime.id) }
                let response = BundleResponse.with {
                    $0.requestID = request.requestID
                    $0.bundle = bundle.wire
                }
                reply(.bundleResponse(response), on: .control, over: link)
            case .bundleResponse(let response):
                guard let pending = pendingBundles[response.requestID], pending.peer == peer.peerID else { return }
                pendingBundles[response.requestID] = nil
                do {
                    pending.continuation.resume(returning: try PrekeyBundle(wire: response.bundle))
                } catch {
                    pending.continuation.resume(throwing: error)
                }
            case .chatMessage:
                break  // through the inbox
            case .receipt(let receipt):
                guard try store.contact(peer.peerID)?.state == .contact else { return }
                let ids = receipt.messageIds.map { Array($0) }
                switch receipt.state {
                case .undecryptable:
                    try peerCouldNotDecrypt(ids, from: peer.peerID)
                case .delivered, .read:
                    let state: MessageState = receipt.state == .read ? .read : .delivered
                    let changed = try store.applyReceipt(ids, state: state, from: peer.peerID)
                    counters.receipts.increment(by: changed.count)
                    for (id, was) in changed {
                        // State events walk queued → sent → delivered → read without a gap: a
                        // receipt that beat the record of the attempt still shows `sent` first.
                        let steps: [MessageState] =
                            (was == .queued ? [.sent] : []) + (state == .read && was != .delivered ? [.delivered] : [])
                            + [state]
                        for step in steps {
                            events.publish(
                                NodeEvent(type: "state", id: Hex.encode(id), peerId: peer.peerID.hex, state: step.name))
                        }
                    }
                default:
                    break
                }
            case .ping, .pong, .errorReply, .signedObject:
                break
            }
        } catch {
            // A peer's bad message is dropped; the node keeps serving (the error names no peer).
            counters.refused.increment()
            logger.debug("inbound message refused", metadata: ["error": "\(error)"])
        }
    }

    private func receiveHello(_ hello: Hello, from peer: LinkPeer) throws {
        // IP literals only: a peer's hello never makes this node resolve a name.
        let addresses = hello.listenAddresses.filter { HostPort(parsing: $0)?.socketAddress != nil }
        guard !addresses.isEmpty else { return }
        if helloAddresses.count >= Self.maximumRememberedHellos, helloAddresses[peer.peerID] == nil {
            helloAddresses.removeAll()
        }
        helloAddresses[peer.peerID] = addresses
        guard var contact = try store.contact(peer.peerID), contact.state != .blocked else { return }
        contact.addresses = Self.merge(addresses, into: contact.addresses)
        try store.saveContact(contact)
    }

    /// Decrypts a batch of one sender's chat messages in order and commits them in one
    /// transaction, then acknowledges them in one receipt. Resends are acknowledged without
    /// decryption; messages that do not decrypt are answered `undecryptable`; malformed content
    /// is dropped. Runs without suspending, so no send interleaves with the sessions it advances.
    private func receiveChats(_ items: [(chat: ChatMessage, link: Link?)], from peer: LinkPeer) {
        guard !items.isEmpty else { return }
        let link = items.last?.link
        do {
            let existing = try store.contact(peer.peerID)
            if existing?.state == .blocked { return }
            // A stranger's room: a new request only while there are fewer than the maximum, and
            // at most so many messages per request.
            var room = Int.max
            if existing == nil {
                guard try store.requestCount() < Self.maximumRequests else {
                    counters.refused.increment(by: items.count)
                    return
                }
                room = Self.maximumMessagesPerRequest
            } else if existing?.state == .request {
                room = max(0, Self.maximumMessagesPerRequest - (try store.conversationLength(with: peer.peerID)))
            }
            let now = Self.unixSeconds()
            var ratchetKeys = SystemRatchetKeys()
            var sessions = existing == nil ? PeerSessions() : try store.sessions(with: peer.peerID)
            let allowance = try store.skippedKeyAllowance(for: peer.peerID)
            var updatedPrekeys: PrekeyStore?
            var contact = existing
            var messages: [NewMessage] = []
            var contents: [ChatContent] = []
            var acknowledged: [[UInt8]] = []
            var undecryptable: [[UInt8]] = []
            var seen = Set<[UInt8]>()
            var resends: [[UInt8]] = []
            for item in items {
                let chat = item.chat
                let id = Array(chat.messageID)
                let resent = try seen.contains(id) || store.hasMessage(id: id)
                if resent {
                    acknowledged.append(id)
                    if !seen.contains(id) { resends.append(id) }
                    continue
                }
                guard messages.count < room else {
                    counters.refused.increment()
                    continue
                }
                guard chat.sealed.count <= Self.maximumSealedBytes else {
                    counters.refused.increment()
                    continue
                }
                let plaintext: [UInt8]
                do {
                    let sealed = Array(chat.sealed)
                    if chat.sessionStart {
                        let accepted = try (updatedPrekeys ?? prekeys).acceptingInitialMessage(
                            sealed, keys: keys, now: now, ratchetKeys: &ratchetKeys)
                        // The session's initiator must be the identity that authenticated the link.
                        guard accepted.initiator.peerID == peer.peerID else { throw ChatError.wrongInitiator }
                        sessions = sessions.adding(accepted.session)
                        updatedPrekeys = accepted.store
                        plaintext = accepted.plaintext
                    } else {
                        guard contact != nil || !messages.isEmpty else { throw ChatError.noSession }
                        let decrypted = try sessions.decrypting(
                            try RatchetMessage(decoding: sealed), now: now, keys: &ratchetKeys,
                            skippedKeyAllowance: allowance)
                        sessions = decrypted.sessions
                        plaintext = decrypted.plaintext
                    }
                } catch {
                    // The sender starts a new session and sends it again (it stays in its outbox).
                    counters.refused.increment()
                    logger.debug("chat message does not decrypt", metadata: ["error": "\(error)"])
                    undecryptable.append(id)
                    continue
                }
                guard let content = try? ChatContent(serializedBytes: plaintext), content.version == 1,
                    !content.text.isEmpty, content.text.utf8.count <= ChatContent.maximumTextBytes,
                    content.senderName.utf8.count <= ChatContent.maximumNameBytes
                else {
                    counters.refused.increment()
                    continue
                }
                if contact == nil {
                    contact = Contact(
                        peerID: peer.peerID, identityKey: [],
                        name: Self.displayName(content.senderName, for: peer.peerID), state: .request,
                        addresses: helloAddresses[peer.peerID] ?? [])
                }
                messages.append(
                    NewMessage(
                        peer: peer.peerID, direction: .received, state: .delivered, sender: peer.peerID,
                        sentAt: content.sentAtMs, receivedAt: Self.unixMilliseconds(), body: content.text, id: id))
                contents.append(content)
                acknowledged.append(id)
                seen.insert(id)
            }
            if var contact, !messages.isEmpty {
                contact.identityKey = Array(peer.identity.rawRepresentation)
                contact.lastSeen = Self.unixMilliseconds()
                let stored = try store.commitIncoming(
                    messages, contact: contact, sessions: sessions, prekeys: updatedPrekeys)
                // Nothing committed (not expected: resends are recognised first): only resends
                // are acknowledged.
                if stored.isEmpty { acknowledged = resends }
                if !stored.isEmpty {
                    counters.received.increment(by: stored.count)
                    if existing == nil {
                        events.publish(NodeEvent(type: "request", peerId: peer.peerID.hex, name: contact.name))
                    }
                    for (message, content) in zip(messages, contents) {
                        events.publish(
                            NodeEvent(
                                type: "message", id: Hex.encode(message.id ?? []), peerId: peer.peerID.hex,
                                from: peer.peerID.hex, text: content.text, sentAt: content.sentAtMs,
                                state: MessageState.delivered.name))
                    }
                    if let updatedPrekeys {
                        prekeys = updatedPrekeys
                        counters.observe(prekeys)
                    }
                }
            }
            // Only now, committed: the receipts.
            if !acknowledged.isEmpty { acknowledge(acknowledged, over: link) }
            if !undecryptable.isEmpty {
                reply(.receipt(Receipt(messageIDs: undecryptable, state: .undecryptable)), on: .chat, over: link)
            }
        } catch {
            // Nothing was committed or acknowledged: the sender sends it all again.
            counters.refused.increment()
            logger.debug("chat batch refused", metadata: ["error": "\(error)"])
        }
    }

    private func acknowledge(_ ids: [[UInt8]], over link: Link?) {
        reply(.receipt(Receipt(messageIDs: ids, state: .delivered)), on: .chat, over: link)
    }

    private func reply(_ body: Envelope.Body, on stream: StreamID, over link: Link?) {
        guard let link else { return }
        Task { try? await link.send(body, on: stream) }
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

    // MARK: - Helpers

    func content(_ text: String, sentAt: UInt64) throws -> [UInt8] {
        try ChatContent.with {
            $0.version = 1
            $0.text = text
            $0.sentAtMs = sentAt
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

/// The chat layer's metrics (no PeerIDs or addresses in labels).
struct ChatCounters: Sendable {
    /// Chat messages handed to a link (first sends and retries).
    let attempts = Counter(label: "privatus_chat_send_attempts_total")
    /// Received messages stored (duplicates not counted).
    let received = Counter(label: "privatus_chat_received_total")
    /// Own messages moved to delivered or read by a receipt.
    let receipts = Counter(label: "privatus_chat_receipts_total")
    /// Inbound chat-layer messages dropped (undecryptable, malformed, replayed…).
    let refused = Counter(label: "privatus_chat_refused_total")
    /// Messages in the outbox.
    let outbox = Gauge(label: "privatus_chat_outbox")
    /// Sessions with a peer dropped and started again because it could not decrypt.
    let restarts = Counter(label: "privatus_chat_session_restarts_total")
    /// First messages recorded for the current signed prekey (alert near its early-rotation
    /// mark: a flood), and unused one-time prekeys.
    let replayCache = Gauge(label: "privatus_prekeys_replay_cache_entries")
    let oneTimePrekeys = Gauge(label: "privatus_prekeys_one_time")

    func observe(_ prekeys: PrekeyStore) {
        replayCache.record(prekeys.replayCacheEntries)
        oneTimePrekeys.record(prekeys.oneTimeCount)
    }
}

/// Why a contacts or chat request was refused (the control API answers 400, 404 or 409).
public enum ChatError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownPeer
    case ambiguousName
    case notAContact
    case cannotAddSelf
    case badName
    case emptyMessage
    case messageTooLong
    case unknownMessage
    case identityNotYetKnown
    case safetyNumberMismatch
    case noSession
    case wrongBundle
    case wrongInitiator
    case bundleTimeout
    case malformedContent
    case notRetryable
    case stopping
    case busy

    public var description: String {
        switch self {
        case .unknownPeer: "no such contact"
        case .ambiguousName: "more than one contact has that name: use the PeerID"
        case .notAContact: "that peer is not a contact (accept the request first)"
        case .cannotAddSelf: "that is this profile's own PeerID"
        case .badName: "a name is 1 to 64 bytes of UTF-8 without control characters"
        case .emptyMessage: "the message is empty"
        case .messageTooLong: "the message is longer than 64 KiB"
        case .unknownMessage: "no such message in this conversation"
        case .identityNotYetKnown: "the contact's identity key is not known yet: connect to it once first"
        case .safetyNumberMismatch: "the safety number does not match: do not mark this contact verified"
        case .noSession: "no session with the peer"
        case .wrongBundle: "the bundle is not the peer's"
        case .wrongInitiator: "the session's initiator is not the link's peer"
        case .bundleTimeout: "the peer did not answer the bundle request"
        case .malformedContent: "the message content is malformed"
        case .stopping: "the node is stopping"
        case .busy: "too many messages are waiting to be sent: try again"
        case .notRetryable:
            "no failed message with that id can be retried (delivered, or its peer was blocked or removed)"
        }
    }
}
