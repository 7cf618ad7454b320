import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusStore
import PrivatusWire

/// Sending: send requests queued and committed in batches (``SendQueue``), each batch's
/// messages handed to delivery (Messenger+Delivery.swift).
extension Messenger {
    /// Queues a text message to a contact and returns it as stored (`queued`); delivery runs in
    /// the background. Requests that arrive together are committed together (``runQueues()``).
    public nonisolated func send(_ text: String, to reference: String) async throws -> StoredMessage {
        try await outgoing.submit(text, to: reference)
    }

    /// Queues a message like ``send(_:to:)``; `answer` takes the result (from the messenger's
    /// task, or at once when the queue refuses it).
    nonisolated func send(
        _ text: String, to reference: String, answer: @escaping @Sendable (Result<StoredMessage, any Error>) -> Void
    ) {
        outgoing.submit(text, to: reference, answer: answer)
    }

    /// Queues a file offer or update to a contact as a chat message (committed, retried and
    /// acknowledged like text); the conversation shows `text`.
    func sendFile(_ file: FileMessage, describedAs text: String, to peer: PeerID) async throws -> StoredMessage {
        try await outgoing.submit(text, file: file, to: peer.hex)
    }

    /// Takes what both queues hold — received chat messages and receipts (``ChatInbox``), send
    /// requests (``SendQueue``) — batch after batch, in one task, until both are finished and the
    /// inbox is empty. One task for both: two would contend for this actor, and each time one
    /// waited for the other, the actor would be handed to another thread (a wake-up). Yields
    /// between rounds only when more waits.
    public func runQueues() async {
        for await _ in work {
            while true {
                let received = inbox.take(Receipt.maximumMessageIDs)
                if !received.isEmpty { receiveBatch(received) }
                let requests = outgoing.take(256)
                if !requests.isEmpty {
                    sendBatchesTaken += 1
                    sendBatch(requests)
                }
                guard inbox.hasWaiting || outgoing.hasWaiting else { break }
                await Task.yield()
            }
            if outgoing.isFinished, inbox.isFinished, !inbox.hasWaiting { return }
        }
    }

    /// Returns once the send batch in progress, if any, has been committed and its messages
    /// handed on (to their links, or to a delivery pass of their own); after ``stopOutgoing()``
    /// none follows. It runs on the actor, after that batch's turn: the batches taken so far,
    /// an actor-isolated read, so the hop to the actor cannot be optimised away.
    @discardableResult
    public func outgoingSettled() -> Int { sendBatchesTaken }

    /// Stops taking send requests (those waiting are refused).
    public nonisolated func stopOutgoing() { outgoing.finish() }

    /// Checks, encrypts (advancing each peer's sessions in memory, in request order) and commits
    /// a batch of send requests in one transaction; answers each request. Runs without
    /// suspending, so no received message interleaves with the sessions it advances.
    func sendBatch(_ requests: [SendQueue.Request]) {
        let now = Self.unixMilliseconds()
        var sessions: [PeerID: PeerSessions] = [:]
        var items: [(message: NewMessage, ciphertext: [UInt8])] = []
        var answers: [SendQueue.Answer] = []
        var resolved: [String: Contact] = [:]  // a batch usually names few peers, many times
        var numbers: [PeerID: UInt64] = [:]  // the next number per peer, kept once committed
        var encrypted = 0
        for request in requests {
            do {
                guard !request.text.isEmpty else { throw ChatError.emptyMessage }
                guard request.text.utf8.count <= ChatContent.maximumTextBytes else { throw ChatError.messageTooLong }
                let contact = try resolved[request.reference] ?? resolve(request.reference)
                resolved[request.reference] = contact
                guard contact.state == .contact else { throw ChatError.notAContact }
                let peer = contact.peerID
                let id = SecureRandom.bytes(16)
                let number = try numbers[peer] ?? nextNumbers[peer] ?? store.lastSentNumber(to: peer) + 1
                var message = NewMessage(
                    peer: peer, direction: .sent, state: .queued, sender: keys.identity.publicKey.peerID, sentAt: now,
                    body: request.text, id: id, number: number)
                message.attachment = request.file?.encoded
                let current = try sessions[peer] ?? store.sessions(with: peer)
                var wire: [UInt8] = []  // empty: waits for a session (the bundle is fetched when delivering)
                if current.sessions.contains(where: \.canSend) {
                    let plaintext = try content(request.text, file: request.file, sentAt: now, number: number)
                    let (advanced, ratchet) = try current.encrypting(plaintext)
                    encrypted += plaintext.count
                    wire = try Self.chatEnvelope(id: id, sealed: ratchet.encoded, sessionStart: false)
                    sessions[peer] = advanced
                } else {
                    sessions[peer] = current
                }
                items.append((message, wire))
                numbers[peer] = number + 1
                answers.append(request.answer)
            } catch {
                request.answer(.failure(error))
            }
        }
        guard !items.isEmpty else { return }
        let stored: [StoredMessage]
        do {
            stored = try store.commitOutgoing(
                items, sessions: sessions, nextTry: now, deadline: now + deliveryDeadline)
        } catch {
            for answer in answers { answer(.failure(error)) }
            return
        }
        counters.sent.increment(by: stored.count)
        counters.encryptedBytes.increment(by: encrypted)
        nextNumbers.merge(numbers) { _, new in new }
        // The messages go to their links first, then the requests are answered: what is on its
        // way to the peer does not wait for the answers' tasks.
        var fresh: [PeerID: [OutboxItem]] = [:]
        for ((message, ciphertext), committed) in zip(items, stored) {
            fresh[message.peer, default: []].append(
                OutboxItem(
                    messageID: committed.id, peer: message.peer, ciphertext: ciphertext, attempts: 0, nextTry: now,
                    number: message.number))
        }
        for (peer, committed) in fresh { scheduleDelivery(to: peer, onlyNew: committed) }
        for (answer, message) in zip(answers, stored) { answer(.success(message)) }
    }
}
