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

/// Receiving: the inbox's group commit of chat messages, receipts, hellos and bundle requests.
extension Messenger {
    // MARK: - Receiving

    /// Handles a message from a peer's link. Chat messages go to the inbox (committed in
    /// batches by ``runQueues()``); the rest is handled at once.
    public nonisolated(nonsending) func receive(_ message: InboundMessage, from peer: LinkPeer, on link: Link?) async {
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
            // Called on the link's event loop: the actor's work (the store) runs on the global
            // executor instead.
            await withTaskExecutorPreference(globalConcurrentExecutor) {
                await receiveNow(message.body, from: peer, on: link)
            }
        }
    }

    /// Decrypts and commits a batch the inbox gave, per sender in arrival order (a receipt ends
    /// the run of chat messages before it). Runs without suspending.
    func receiveBatch(_ batch: [ChatInbox.Item]) {
        var order: [PeerID] = []
        var bySender: [PeerID: [ChatInbox.Item]] = [:]
        for item in batch {
            if bySender[item.peer.peerID] == nil { order.append(item.peer.peerID) }
            bySender[item.peer.peerID, default: []].append(item)
        }
        for sender in order {
            var chats: [(chat: ChatMessage, link: Link?)] = []
            // Delivered receipts that follow one another: applied together (one transaction), in
            // their place.
            var receipts: [Receipt] = []
            for item in bySender[sender] ?? [] {
                if case .chatMessage(let chat) = item.body {
                    applyReceipts(&receipts, from: item.peer)
                    chats.append((chat, item.link))
                } else if case .receipt(let receipt) = item.body, receipt.state == .delivered {
                    receiveChats(chats, from: item.peer)
                    chats.removeAll()
                    receipts.append(receipt)
                } else {
                    receiveChats(chats, from: item.peer)
                    chats.removeAll()
                    applyReceipts(&receipts, from: item.peer)
                    receiveNow(item.body, from: item.peer, on: item.link)
                }
            }
            if let peer = bySender[sender]?.first?.peer {
                receiveChats(chats, from: peer)
                applyReceipts(&receipts, from: peer)
            }
        }
    }

    /// Closes the inbox: ``runQueues()`` takes what is left and ends (once ``stopOutgoing()``
    /// has been called too).
    public nonisolated func stopInbox() { inbox.finish() }

    func receiveNow(_ body: Envelope.Body, from peer: LinkPeer, on link: Link?) {
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
                    try applyReceipt(ids, state: receipt.state == .read ? .read : .delivered, from: peer.peerID)
                default:
                    break
                }
            case .resendRequest(let request):
                try receiveResendRequest(request, from: peer.peerID)
            case .ping, .pong, .errorReply, .signedObject, .fileWant, .fileChunk:
                break  // file messages go to the node's FileTransfers
            }
        } catch {
            // A peer's bad message is dropped; the node keeps serving (the error names no peer).
            counters.refused.increment()
            logger.debug("inbound message refused", metadata: ["error": "\(error)"])
        }
    }

    /// Applies delivered receipts from one peer together and empties `receipts`.
    func applyReceipts(_ receipts: inout [Receipt], from peer: LinkPeer) {
        guard !receipts.isEmpty else { return }
        defer { receipts.removeAll() }
        guard receipts.count > 1 else {
            receiveNow(.receipt(receipts[0]), from: peer, on: nil)
            return
        }
        do {
            guard try store.contact(peer.peerID)?.state == .contact else { return }
            try applyReceipt(receipts.flatMap { $0.messageIds.map { Array($0) } }, state: .delivered, from: peer.peerID)
        } catch {
            counters.refused.increment()
            logger.debug("inbound message refused", metadata: ["error": "\(error)"])
        }
    }

    /// Applies a receipt (or several, coalesced) from a contact, in one transaction.
    func applyReceipt(_ ids: [[UInt8]], state: MessageState, from peer: PeerID) throws {
        let changed = try store.applyReceipt(ids, state: state, from: peer)
        if var waiting = unrecordedAttempts[peer] {
            for id in ids { waiting[id] = nil }
            unrecordedAttempts[peer] = waiting.isEmpty ? nil : waiting
        }
        counters.receipts.increment(by: changed.count)
        counters.delivered.increment(by: changed.filter { $0.was != .delivered }.count)
        let peerHex = peer.hex
        var changes: [NodeEvent] = []
        for (id, was) in changed {
            // State events walk queued → sent → delivered → read without a gap: a receipt that
            // beat the record of the attempt still shows `sent` first.
            let hex = Hex.encode(id)
            if was == .queued { changes.append(NodeEvent(type: "state", id: hex, peerId: peerHex, state: "sent")) }
            if state == .read, was != .delivered {
                changes.append(NodeEvent(type: "state", id: hex, peerId: peerHex, state: "delivered"))
            }
            changes.append(NodeEvent(type: "state", id: hex, peerId: peerHex, state: state.name))
        }
        // One batch: a watcher gets the receipt's changes in one write.
        events.publish(changes)
    }

    func receiveHello(_ hello: Hello, from peer: LinkPeer) throws {
        // IP literals only: a peer's hello never makes this node resolve a name.
        let addresses = hello.listenAddresses.filter { HostPort(parsing: $0)?.socketAddress != nil }
        let secret = hello.presenceSecret.count == Contact.presenceSecretBytes ? Array(hello.presenceSecret) : []
        guard !addresses.isEmpty || !secret.isEmpty else { return }
        if !addresses.isEmpty {
            if helloAddresses.count >= Self.maximumRememberedHellos, helloAddresses[peer.peerID] == nil {
                helloAddresses.removeAll()
            }
            helloAddresses[peer.peerID] = addresses
        }
        guard var contact = try store.contact(peer.peerID), contact.state != .blocked else { return }
        let before = contact
        if !addresses.isEmpty { contact.addresses = Self.merge(addresses, into: contact.addresses) }
        if !secret.isEmpty { contact.presenceSecret = secret }
        if contact != before { try store.saveContact(contact) }
    }

    /// Decrypts a batch of one sender's chat messages in order and commits them in one
    /// transaction, then acknowledges them in one receipt. Resends are acknowledged without
    /// decryption; messages that do not decrypt are answered `undecryptable`; malformed content
    /// is dropped. Runs without suspending, so no send interleaves with the sessions it advances.
    func receiveChats(_ items: [(chat: ChatMessage, link: Link?)], from peer: LinkPeer) {
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
            var acknowledged: [[UInt8]] = []
            var undecryptable: [[UInt8]] = []
            var seen = Set<[UInt8]>()
            var resends: [[UInt8]] = []
            var fileChanges: [[UInt8]] = []
            let stored = try store.storedMessageIDs(among: items.map { Array($0.chat.messageID) })
            for item in items {
                let chat = item.chat
                let id = Array(chat.messageID)
                let resent = seen.contains(id) || stored.contains(id)
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
                counters.decryptedBytes.increment(by: plaintext.count)
                guard let content = try? ChatContent(serializedBytes: plaintext), content.version == 1,
                    content.text.utf8.count <= ChatContent.maximumTextBytes,
                    content.senderName.utf8.count <= ChatContent.maximumNameBytes,
                    content.number <= Store.maximumMessageNumber
                else {
                    counters.refused.increment()
                    continue
                }
                // Text, or a file offer or update (then no text): anything else is refused.
                let file = FileMessage(content)
                var body = content.text
                if let file {
                    let wellFormed: Bool
                    switch file {
                    case .offer(let offer): wellFormed = offer.isWellFormed
                    case .update(let update): wellFormed = update.isWellFormed
                    }
                    guard content.text.isEmpty, wellFormed, let files else {
                        counters.refused.increment()
                        continue
                    }
                    body = files.applyReceived(file, from: peer.peerID, isContact: existing?.state == .contact)
                    fileChanges.append(file.transferID)
                } else if content.text.isEmpty {
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
                        sentAt: content.sentAtMs, receivedAt: Self.unixMilliseconds(), body: body, id: id,
                        number: content.number, startsSession: chat.sessionStart))
                acknowledged.append(id)
                seen.insert(id)
            }
            if var contact, !messages.isEmpty {
                // The contact is written with the messages when it is new, its identity key is
                // new, or it was last seen a while ago: not for every batch of a conversation.
                let identityKey = Array(peer.identity.rawRepresentation)
                let now = Self.unixMilliseconds()
                let lastSeen = contact.lastSeen ?? 0
                // (A clock that went back also writes it.)
                let changed =
                    existing == nil || contact.identityKey != identityKey || now < lastSeen
                    || now - lastSeen >= Self.lastSeenResolution
                contact.identityKey = identityKey
                if changed { contact.lastSeen = now }
                // Shown now, in their sender's order (held ones that waited for these included);
                // the others wait behind a gap.
                let commit = try store.commitIncoming(
                    messages, contact: changed ? contact : nil, sessions: sessions, prekeys: updatedPrekeys)
                let shown = commit.shown
                // Nothing committed (not expected: resends are recognised first): only resends
                // are acknowledged.
                if commit.isResend { acknowledged = resends }
                // Committed: the receipt goes first, then the events and the rest.
                acknowledge(acknowledged, over: link)
                acknowledged = []
                if !commit.held.isEmpty { gapsOpen.insert(peer.peerID) }
                if !commit.isResend {
                    counters.received.increment(by: messages.count)
                    counters.gapsGivenUp.increment(by: commit.gapsGivenUp)
                    if existing == nil {
                        events.publish(NodeEvent(type: "request", peerId: peer.peerID.hex, name: contact.name))
                    }
                    publishReceived(shown, from: peer.peerID)
                    if let files, !fileChanges.isEmpty { Task { await files.received(fileChanges) } }
                    if let updatedPrekeys {
                        prekeys = updatedPrekeys
                        counters.observe(prekeys)
                    }
                }
            }
            // Only now, committed: the receipts (of resends alone, when nothing new was committed).
            acknowledge(acknowledged, over: link)
            if !undecryptable.isEmpty {
                reply(.receipt(Receipt(messageIDs: undecryptable, state: .undecryptable)), on: .chat, over: link)
            }
        } catch {
            // Nothing was committed or acknowledged: the sender sends it all again.
            counters.refused.increment()
            logger.debug("chat batch refused", metadata: ["error": "\(error)"])
        }
    }

    /// Tells watchers of received messages as they are shown.
    func publishReceived(_ shown: [StoredMessage], from peer: PeerID) {
        events.publish(
            shown.map { message in
                NodeEvent(
                    type: "message", id: Hex.encode(message.id), peerId: peer.hex, from: peer.hex, text: message.body,
                    sentAt: message.sentAt, state: MessageState.delivered.name)
            })
    }

    // MARK: - Gaps

    /// Asks peers whose messages wait behind a gap for the missing ones (once the gap has been
    /// open `gapResend`, then at most every `gapResend`), and shows what waits once it has been
    /// open `gapRelease` (the scheduler calls it every second).
    public func checkGaps() {
        guard !gapsOpen.isEmpty else { return }
        let now = Self.unixMilliseconds()
        for peer in gapsOpen {
            do {
                guard let gap = try store.gap(with: peer) else {
                    gapsOpen.remove(peer)
                    lastResendRequest[peer] = nil
                    continue
                }
                let open = now >= gap.since ? now - gap.since : 0
                let sinceRequest = now - min(now, lastResendRequest[peer] ?? 0)
                if open >= gapRelease || gap.missing == nil {
                    publishReceived(try store.releaseHeld(with: peer), from: peer)
                    gapsOpen.remove(peer)
                    lastResendRequest[peer] = nil
                    counters.gapsGivenUp.increment()
                } else if open >= gapResend, sinceRequest >= gapResend, let missing = gap.missing,
                    try store.contact(peer)?.state != .blocked
                {
                    lastResendRequest[peer] = now
                    let last = min(missing.upperBound, missing.lowerBound + ResendRequest.maximumSpan - 1)
                    let request = ResendRequest(first: missing.lowerBound, last: last)
                    counters.resendRequests.increment()
                    guard let links else { continue }
                    Task {
                        guard let link = links.link(to: peer) else { return }
                        try? await link.send(.resendRequest(request), on: .chat)
                    }
                }
            } catch {
                logger.debug("gap check failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// A contact asks for messages again (a gap on its side): those still waiting in the outbox,
    /// not failed, become due and are sent now. At most one request per peer is served per
    /// second (each one is a write), the rest are dropped: the peer asks again.
    func receiveResendRequest(_ request: ResendRequest, from peer: PeerID) throws {
        let now = Self.unixMilliseconds()
        if let last = lastResendServed[peer], now >= last, now - last < 1_000 { return }
        guard try store.contact(peer)?.state == .contact else { return }
        if lastResendServed.count >= Self.maximumRememberedHellos { lastResendServed.removeAll() }
        lastResendServed[peer] = now
        _ = try store.makeDue(for: peer, numbers: request.first...request.last, now: Self.unixMilliseconds())
        // Even when nothing was put off: an entry already due may wait behind newer messages
        // (``caughtUp``); this pass reads the whole outbox.
        scheduleDelivery(to: peer)
    }

    func acknowledge(_ ids: [[UInt8]], over link: Link?) {
        guard !ids.isEmpty else { return }
        reply(.receipt(Receipt(messageIDs: ids, state: .delivered)), on: .chat, over: link)
    }

    /// Queues `body` on the link without waiting, in order behind what this node queued
    /// before (receipts after the messages they follow); dropped if the link is gone.
    func reply(_ body: Envelope.Body, on stream: StreamID, over link: Link?) {
        guard let link else { return }
        _ = try? link.enqueue(body, on: stream)
    }
}
