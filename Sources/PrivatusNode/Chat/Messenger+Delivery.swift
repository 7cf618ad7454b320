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

/// Delivery: passes over the links, sessions started from fetched bundles and restarted when
/// the peer cannot decrypt, dialling contacts.
extension Messenger {
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
                guard let link = links.link(to: contact.peerID) else { return }
                // Behind the delivered receipts queued before them.
                for batch in batches {
                    _ = try? link.enqueue(.receipt(Receipt(messageIDs: batch, state: .read)), on: .chat)
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
            let failed = try store.failOverdue(now: Self.unixMilliseconds())
            counters.failed.increment(by: failed.count)
            for (id, peer) in failed {
                events.publish(NodeEvent(type: "state", id: Hex.encode(id), peerId: peer.hex, state: "failed"))
            }
        } catch {
            logger.debug("overdue messages not failed", metadata: ["error": "\(error)"])
        }
        guard let peers = try? store.peersWithDueOutbox(dueBy: Self.unixMilliseconds()) else { return }
        for peer in peers { scheduleDelivery(to: peer) }
    }

    /// - Parameter everything: send every waiting message, due or not (the peer's link just came
    ///   up: whatever was sent on an earlier link may have been lost with it, and what was put off
    ///   because the peer was away can go now).
    /// - Parameter onlyNew: when the reason is only these messages, just committed (in order):
    ///   with everything before them on its way (``caughtUp``) they are all that is due, and the
    ///   outbox is not read. For any other reason all of it is read.
    func scheduleDelivery(to peer: PeerID, everything: Bool = false, onlyNew: [OutboxItem]? = nil) {
        if onlyNew == nil { caughtUp.remove(peer) }
        if everything { deliverEverything.insert(peer) }
        guard !delivering.contains(peer) else {
            redeliver.insert(peer)
            return
        }
        // Over an open link with room, the pass runs now, in this turn of the actor, unless it
        // would have to suspend: no wait for another turn behind other work.
        if !deliverEverything.contains(peer), let link = openLinks[peer], link.isActive, link.hasRoom,
            deliverReady(to: peer, over: link, onlyNew: onlyNew)
        {
            return
        }
        caughtUp.remove(peer)
        delivering.insert(peer)
        Task { await self.deliver(to: peer) }
    }

    /// A delivery pass that does not suspend: sends `peer`'s due entries over `link` when all of
    /// them are ready (encrypted) and few. Returns false, having sent nothing, when the pass must
    /// run as ``deliver(to:)`` (an entry waits for a session, there are many, or reading failed).
    func deliverReady(to peer: PeerID, over link: Link, onlyNew: [OutboxItem]? = nil) -> Bool {
        do {
            guard try store.contact(peer)?.state == .contact else {
                caughtUp.remove(peer)
                return true
            }
            let due: [OutboxItem]
            if let onlyNew, caughtUp.contains(peer) {
                due = onlyNew
            } else {
                let unrecorded = Set((unrecordedAttempts[peer] ?? [:]).keys)
                due = try store.outbox(
                    for: peer, dueBy: Self.unixMilliseconds(), limit: 256 + unrecorded.count, skipping: unrecorded)
            }
            guard !due.isEmpty else {
                caughtUp.insert(peer)
                return true
            }
            guard due.count < 256, !due.contains(where: \.ciphertext.isEmpty) else { return false }
            try link.enqueue(due.map { LinkMessage(stream: .chat, bytes: $0.ciphertext) })
            caughtUp.insert(peer)
            counters.attempts.increment(by: due.count)
            let sentAt = Self.unixMilliseconds()
            noteAttempts(
                due.map { sent in
                    (
                        sent.messageID,
                        sentAt + min(firstRetryInterval << min(UInt64(sent.attempts), 16), maximumRetryInterval)
                    )
                }, peer: peer)
            return true
        } catch {
            return false
        }
    }

    /// Sends `peer`'s due outbox entries in order over its link (dialling it if needed), stopping
    /// at the first that cannot go: a later message must not overtake an earlier one. A peer that
    /// cannot be reached, or whose bundle cannot be fetched, is tried again a retry interval later.
    func deliver(to peer: PeerID) async {
        defer {
            delivering.remove(peer)
            if redeliver.remove(peer) != nil { scheduleDelivery(to: peer) }
        }
        // This pass may stop part way: the next one reads the whole outbox.
        caughtUp.remove(peer)
        do {
            // Only contacts are written to: a blocked or removed peer's messages left the outbox.
            guard try store.contact(peer)?.state == .contact else { return }
            let everything = deliverEverything.remove(peer) != nil
            // Everything waiting: all but failed messages, whose entries are never due.
            let horizon = everything ? UInt64(Store.neverDue - 1) : Self.unixMilliseconds()
            // Messages handed to the link whose attempt is not recorded yet are still due in the
            // store: not sent twice (unless a new link takes everything).
            let unrecorded: Set<[UInt8]> = everything ? [] : Set((unrecordedAttempts[peer] ?? [:]).keys)
            let due = try store.outbox(
                for: peer, dueBy: horizon, limit: 1_000 + unrecorded.count, skipping: unrecorded)
            guard !due.isEmpty else { return }
            // The link last used, while open: no hop to the connection manager (and no wait for
            // this actor's turn again) per pass.
            let found: Link?
            if let open = openLinks[peer], open.isActive {
                found = open
            } else {
                found = await link(to: peer)
            }
            guard let link = found else {
                openLinks[peer] = nil
                try store.deferOutbox(for: peer, until: Self.unixMilliseconds() + firstRetryInterval)
                return
            }
            openLinks[peer] = link
            let generation = sessionGenerations[peer, default: 0]
            // Attempts are noted once the pass ends and recorded later, only for messages whose
            // receipt has not come by then (``noteAttempts(_:peer:)``); a receipt that comes first
            // is applied first, and the state events still walk queued → sent → delivered.
            var attempts: [(messageID: [UInt8], nextTry: UInt64)] = []
            defer {
                // After a restart the entries were emptied and made due: a new pass sends them,
                // in order; recording these attempts would put them off behind later messages.
                if sessionGenerations[peer, default: 0] == generation { noteAttempts(attempts, peer: peer) }
            }
            // Ready messages go to the link in runs (one hand-over per run, not per message),
            // queued in order without waiting (the link's own task hands them over), unless the
            // link holds too much already.
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
                    let room = try link.enqueue(bytes.map { LinkMessage(stream: .chat, bytes: $0) })
                    counters.attempts.increment(by: run.count)
                    let sentAt = Self.unixMilliseconds()
                    for sent in run {
                        let delay = min(firstRetryInterval << min(UInt64(sent.attempts), 16), maximumRetryInterval)
                        attempts.append((sent.messageID, sentAt + delay))
                    }
                    run.removeAll()
                    bytes.removeAll()
                    if !room { await link.waitForRoom() }
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

    /// Notes messages just handed to `peer`'s link. Their attempts are recorded (`sent`, next
    /// try put off) ``attemptRecordDelay`` later, together, for those whose receipt has not come
    /// by then: a message delivered within that time needs no write for its attempt. Until
    /// recorded, they are left out of delivery passes (they are on their way) except one that
    /// sends everything on a new link. An attempt not yet recorded when the node stops is made
    /// again after a restart (the receiver recognises the resend), as after a crash.
    func noteAttempts(_ attempts: [(messageID: [UInt8], nextTry: UInt64)], peer: PeerID) {
        guard !attempts.isEmpty else { return }
        let recordAt = ContinuousClock.now + Self.attemptRecordDelay
        for attempt in attempts {
            unrecordedAttempts[peer, default: [:]][attempt.messageID] = UnrecordedAttempt(
                nextTry: attempt.nextTry, recordAt: recordAt)
        }
        scheduleAttemptRecording()
    }

    /// How long an attempt waits for its receipt before it is recorded.
    static let attemptRecordDelay = Duration.milliseconds(250)

    func scheduleAttemptRecording() {
        guard !attemptRecordingScheduled else { return }
        attemptRecordingScheduled = true
        Task {
            try? await Task.sleep(for: Self.attemptRecordDelay)
            self.recordDueAttempts()
        }
    }

    /// Records the attempts whose time has come (one transaction per peer), and schedules the
    /// rest.
    func recordDueAttempts() {
        attemptRecordingScheduled = false
        let now = ContinuousClock.now
        for (peer, waiting) in unrecordedAttempts {
            let due = waiting.filter { $0.value.recordAt <= now }
            guard !due.isEmpty else { continue }
            let remaining = waiting.filter { $0.value.recordAt > now }
            unrecordedAttempts[peer] = remaining.isEmpty ? nil : remaining
            recordAttempts(due.map { ($0.key, $0.value.nextTry) }, peer: peer)
        }
        if !unrecordedAttempts.isEmpty { scheduleAttemptRecording() }
    }

    /// Forgets `peer`'s attempts not yet recorded (its sessions restarted, or its outbox was
    /// failed: the entries were changed under them).
    func forgetAttempts(to peer: PeerID) {
        unrecordedAttempts[peer] = nil
        caughtUp.remove(peer)
    }

    func recordAttempts(_ attempts: [(messageID: [UInt8], nextTry: UInt64)], peer: PeerID) {
        do {
            events.publish(
                try store.recordAttempts(attempts, peer: peer).map {
                    NodeEvent(type: "state", id: Hex.encode($0), peerId: peer.hex, state: "sent")
                })
        } catch {
            // Due now and no longer noted as on their way: the next pass reads them.
            caughtUp.remove(peer)
            logger.debug("attempts not recorded", metadata: ["error": "\(error)"])
        }
    }

    /// The peer could not decrypt messages it was sent (it lost or removed the session, or
    /// refused a first message): when they are still in the outbox, drop the sessions and send
    /// them again in a new one.
    func peerCouldNotDecrypt(_ ids: [[UInt8]], from peer: PeerID) throws {
        let waiting = Set(try store.outbox(for: peer, dueBy: .max, limit: 10_000).map(\.messageID))
        guard ids.contains(where: waiting.contains) else { return }
        let now = Self.unixMilliseconds()
        if let last = lastRestart[peer], now - last < firstRetryInterval { return }
        lastRestart[peer] = now
        try store.restartSessions(with: peer, now: now)
        sessionGenerations[peer, default: 0] += 1
        forgetAttempts(to: peer)
        counters.restarts.increment()
        scheduleDelivery(to: peer)
    }

    /// Encrypts a message that was queued before there was a session: fetches the peer's bundle,
    /// then (without suspending again) starts a session, or uses one that appeared meanwhile,
    /// and commits the result. Returns the bytes to send, or nil if the message is gone.
    func sealAwaitingSession(_ item: OutboxItem, over link: Link) async throws -> [UInt8]? {
        var sessions = try store.sessions(with: item.peer)
        var bundle: PrekeyBundle?
        if !sessions.sessions.contains(where: \.canSend) {
            bundle = try await fetchBundle(from: link)
            sessions = try store.sessions(with: item.peer)
        }
        guard let stored = try store.message(id: item.messageID)?.message else { return nil }
        let plaintext = try content(
            stored.body, file: stored.attachment.flatMap(FileMessage.init(encoded:)), sentAt: stored.sentAt,
            number: item.number)
        let wire: [UInt8]
        if sessions.sessions.contains(where: \.canSend) {
            let (advanced, ratchet) = try sessions.encrypting(plaintext)
            sessions = advanced
            counters.encryptedBytes.increment(by: plaintext.count)
            wire = try Self.chatEnvelope(id: item.messageID, sealed: ratchet.encoded, sessionStart: false)
        } else {
            guard let bundle else { throw ChatError.noSession }
            guard bundle.peerID == item.peer else { throw ChatError.wrongBundle }
            var ratchetKeys = SystemRatchetKeys()
            let (session, first) = try SessionStart.initiate(
                keys: keys, bundle: bundle, firstPlaintext: plaintext, now: Self.unixSeconds(),
                ratchetKeys: &ratchetKeys)
            sessions = sessions.adding(session)
            counters.encryptedBytes.increment(by: plaintext.count)
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
    func fetchBundle(from link: Link) async throws -> PrekeyBundle {
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

    func failBundleRequest(_ id: UInt64, with error: any Error) {
        pendingBundles.removeValue(forKey: id)?.continuation.resume(throwing: error)
    }

    // MARK: - Links

    /// The open link to `peer`, if any (never dials).
    func openLink(to peer: PeerID) async -> Link? {
        links?.link(to: peer)
    }

    /// The open link to `peer`, or a new one dialled at its known addresses (in order), then at
    /// the addresses the DHT gives for it (``attachAddressFinder(_:)``; at most one lookup per
    /// peer per ``addressLookupInterval``). A host name (from an invite) is resolved on NIO's
    /// blocking-work pool, never on this actor. An address from anywhere is only a hint: the
    /// handshake proves the PeerID.
    func link(to peer: PeerID) async -> Link? {
        guard let links else { return nil }
        if let open = links.link(to: peer) { return open }
        guard let contact = try? store.contact(peer), contact.state == .contact else { return nil }
        if let link = await dial(peer, at: contact.addresses, over: links) { return link }
        guard let findAddresses else { return nil }
        let now = Self.unixMilliseconds()
        if let last = lastAddressLookup[peer], now < last + Self.addressLookupInterval { return nil }
        lastAddressLookup[peer] = now
        if lastAddressLookup.count > Self.maximumRememberedLookups { lastAddressLookup = [peer: now] }
        // Not counted as a lookup while the DHT has not joined yet (nil).
        guard let found = await findAddresses(contact) else {
            lastAddressLookup[peer] = nil
            return nil
        }
        // Presence addresses, then the bundle record's (at most 8 of each).
        let new = found.filter { !contact.addresses.contains($0) }
        return await dial(peer, at: Array(new.prefix(2 * Contact.maximumAddresses)), over: links)
    }

    func dial(_ peer: PeerID, at addresses: [String], over links: ConnectionManager) async -> Link? {
        for address in addresses {
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

    func doneDialling(_ peer: PeerID) { dialling.remove(peer) }

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
        openLinks[peer.peerID] = link
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
            if let files { Task { await files.linkUp(peer.peerID) } }
        }
    }

    /// Tells a contact where this node listens. Only contacts hear it: a stranger who reaches
    /// this node learns no more of its addresses (which can include LAN ones) than it dialled.
    func sendHello(over link: Link) {
        var hello = Hello(listenAddresses: advertised)
        do {
            // Checked now, not when the hello was decided on: a peer blocked in between (the
            // block renewed the secret) must not get the new one.
            if try store.contact(link.peer.peerID)?.state == .contact {
                hello.presenceSecret = Data(try presenceSecret().bytes)
            }
        } catch {
            logger.debug("presence secret not read", metadata: ["error": "\(error)"])
        }
        Task { try? await link.send(.hello(hello), on: .control) }
    }

    /// After a peer became a contact: its open link, if any, hears the hello now.
    func greetIfLinked(_ peer: PeerID) {
        guard let links else { return }
        Task {
            if let link = links.link(to: peer) { self.sendHello(over: link) }
        }
    }
}
