import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusStore
import PrivatusTesting
import Testing

/// What the node's chat layer asks of the store: contacts as they are learned, the outbox's
/// life, receipts, received messages with their sessions.
@Suite struct ChatStorageTests {
    let scratch: TemporaryDirectory
    let store: Store
    let me = PeerID(identityPublicKey: [1])

    init() throws {
        scratch = try TemporaryDirectory("privatus-chat-store")
        store = try Store(path: scratch.child("privatus.sqlite"), databaseKey: SymmetricKey(size: .bits256))
    }

    @Test func aContactAddedByPeerIDAloneLearnsItsKeyAndAddressesLater() throws {
        defer { scratch.remove() }
        let key = IdentityKey().publicKey
        var contact = Contact(
            peerID: key.peerID, identityKey: [], name: "Bob", state: .contact, addresses: ["127.0.0.1:4000"])
        try store.saveContact(contact)
        #expect(try store.contact(key.peerID) == contact)
        contact.identityKey = Array(key.rawRepresentation)
        contact.addresses = ["[::1]:4001", "127.0.0.1:4000"]
        contact.lastSeen = 1_800_000_000_123
        contact.verified = true
        contact.presenceSecret = [UInt8](repeating: 0x5a, count: Contact.presenceSecretBytes)
        try store.saveContact(contact)
        #expect(try store.contact(key.peerID) == contact, "updated in place, read back whole")
        #expect(try store.contacts().count == 1)
        // A key that is not the PeerID's is refused when read back: the row is not trusted.
        let other = IdentityKey().publicKey
        try store.saveContact(
            Contact(peerID: key.peerID, identityKey: Array(other.rawRepresentation), name: "Eve", state: .contact))
        #expect(throws: StoreError.damagedRow(table: "contacts")) { try store.contacts() }
        #expect(try store.removeContact(key.peerID))
        #expect(try store.contact(key.peerID) == nil)
        #expect(try !store.removeContact(key.peerID))
    }

    @Test func aMessageWaitingForASessionIsSealedLaterThenSentThenDelivered() throws {
        defer { scratch.remove() }
        let (alice, _, bobKeys) = try SessionStorageTests.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.saveContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        let queued = try store.queueAwaitingSession(
            NewMessage(peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 5, body: "first"), nextTry: 5)
        var due = try store.outbox(dueBy: 5)
        #expect(due.map(\.messageID) == [queued.id] && due.map(\.peer) == [bob])
        #expect(due.first?.ciphertext.isEmpty == true, "nothing to send before a session exists")
        #expect(try store.message(id: queued.id)?.message.body == "first")

        try store.commitSealed(messageID: queued.id, peer: bob, ciphertext: [9, 9, 9], sessions: PeerSessions([alice]))
        due = try store.outbox(dueBy: 5)
        #expect(due.first?.ciphertext == [9, 9, 9])
        #expect(try store.sessions(with: bob).sessions.map(\.serialized) == [alice.serialized])

        #expect(try store.recordAttempt(messageID: queued.id, peer: bob, nextTry: 100))
        #expect(try store.outbox(dueBy: 99).isEmpty, "not retried before its time")
        #expect(try store.outbox(dueBy: 100).first?.attempts == 1)
        #expect(try store.latestMessages(with: bob).map(\.state) == [.sent])

        // A receipt from someone else, or for an id not sent to that peer, changes nothing.
        let stranger = PeerID(identityPublicKey: [2])
        #expect(try store.applyReceipt([queued.id], state: .delivered, from: stranger).isEmpty)
        #expect(try store.applyReceipt([[UInt8](repeating: 0, count: 16)], state: .delivered, from: bob).isEmpty)
        #expect(try store.latestMessages(with: bob).map(\.state) == [.sent])
        #expect(try store.applyReceipt([queued.id], state: .delivered, from: bob).map(\.id) == [queued.id])
        #expect(try store.outbox(dueBy: .max).isEmpty, "a delivered message leaves the outbox")
        #expect(try store.latestMessages(with: bob).map(\.state) == [.delivered])
        // Read follows delivered; delivered never follows read.
        #expect(try store.applyReceipt([queued.id], state: .read, from: bob).map(\.was) == [.delivered])
        #expect(try store.applyReceipt([queued.id], state: .delivered, from: bob).isEmpty)
        #expect(try store.latestMessages(with: bob).map(\.state) == [.read])
        // Once delivered, a late sealing finds nothing to fill in.
        #expect(throws: StoreError.notFound) {
            try store.commitSealed(messageID: queued.id, peer: bob, ciphertext: [1], sessions: PeerSessions([alice]))
        }
    }

    @Test func aReceivedMessageIsStoredOnceWithItsSendersIDAndANewRequest() throws {
        defer { scratch.remove() }
        let (_, bobSession, _) = try SessionStorageTests.pair()
        let stranger = IdentityKey().publicKey
        let id = [UInt8](repeating: 0xAB, count: 16)
        let message = NewMessage(
            peer: stranger.peerID, direction: .received, state: .delivered, sender: stranger.peerID, sentAt: 7,
            receivedAt: 8, body: "hi, we met at the conference", id: id)
        let request = Contact(
            peerID: stranger.peerID, identityKey: Array(stranger.rawRepresentation), name: "Carol", state: .request)
        guard
            case .stored(let stored) = try store.commitIncoming(
                message, contact: request, sessions: PeerSessions([bobSession]), prekeys: nil)
        else {
            Issue.record("the first copy is stored")
            return
        }
        #expect(stored.id == id)
        #expect(try store.contact(stranger.peerID)?.state == .request)
        #expect(try store.sessions(with: stranger.peerID).sessions.count == 1)
        #expect(try store.hasMessage(id: id))
        // The sender resends (our receipt was lost): nothing changes.
        let again = try store.commitIncoming(message, contact: request, sessions: PeerSessions(), prekeys: nil)
        #expect(again == .duplicate)
        #expect(try store.sessions(with: stranger.peerID).sessions.count == 1, "the resend did not touch the sessions")
        #expect(try store.latestMessages(with: stranger.peerID).map(\.body) == ["hi, we met at the conference"])
        #expect(try store.search("conference").map(\.id) == [id])
        // Reading marks received messages read, once.
        #expect(try store.markRead(from: stranger.peerID) == [id])
        #expect(try store.latestMessages(with: stranger.peerID).map(\.state) == [.read])
        #expect(try store.markRead(from: stranger.peerID).isEmpty)
    }
}

extension ChatStorageTests {
    @Test func anOverdueMessageFailsKeepsItsBytesAndARetryQueuesItAgain() throws {
        defer { scratch.remove() }
        let (alice, _, bobKeys) = try SessionStorageTests.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.saveContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        let stored = try store.commitOutgoing(
            NewMessage(peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 1, body: "late"),
            ciphertext: [4, 2], sessions: PeerSessions([alice]), nextTry: 1, deadline: 100)
        #expect(try store.failOverdue(now: 99).isEmpty)
        #expect(try store.failOverdue(now: 100).map(\.id) == [stored.id])
        #expect(try store.failOverdue(now: 200).isEmpty, "failed once")
        #expect(try store.latestMessages(with: bob).map(\.state) == [.failed])
        #expect(try store.outbox(dueBy: 1_000_000).isEmpty && store.outboxCount() == 0, "never due while failed")
        #expect(try store.retry(messageID: stored.id, now: 300, deadline: 400) == bob)
        #expect(try store.latestMessages(with: bob).map(\.state) == [.queued])
        let due = try store.outbox(for: bob, dueBy: 300)
        #expect(due.map(\.ciphertext) == [[4, 2]] && due.map(\.attempts) == [0], "the same committed bytes")
        #expect(throws: StoreError.notFound) { try store.retry(messageID: stored.id, now: 301, deadline: 401) }
    }
}

extension ChatStorageTests {
    @Test func anAttemptRecordedAfterTheMessageFailedLeavesItNeverDue() throws {
        defer { scratch.remove() }
        let (alice, _, bobKeys) = try SessionStorageTests.pair()
        let bob = bobKeys.identity.publicKey.peerID
        try store.saveContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
        let stored = try store.commitOutgoing(
            NewMessage(peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 1, body: "in flight"),
            ciphertext: [1], sessions: PeerSessions([alice]), nextTry: 1, deadline: 10)
        // It fails while a delivery pass holds it; the pass then records its attempt.
        #expect(try store.failOverdue(now: 10).map(\.id) == [stored.id])
        _ = try store.recordAttempts([(stored.id, 20)], peer: bob)
        #expect(try store.outbox(dueBy: 1_000_000).isEmpty, "still never due")
        #expect(try store.latestMessages(with: bob).map(\.state) == [.failed])
        #expect(try store.failOverdue(now: 1_000).isEmpty, "not failed twice")
        // Put off and restarted sessions keep it never due too.
        try store.deferOutbox(for: bob, until: 5_000)
        try store.restartSessions(with: bob, now: 6_000)
        #expect(try store.outbox(dueBy: 1_000_000).isEmpty)
    }
}

extension ChatStorageTests {
    /// A receipt naming more messages than one lookup takes, in another order than they were
    /// sent, with repeats, another conversation's, a received message's and unknown ids among
    /// them.
    @Test func aReceiptForManyMessagesMovesEachOfThisConversationsSentMessagesOnce() throws {
        defer { scratch.remove() }
        let (_, bobSession, _) = try SessionStorageTests.pair()
        let bob = IdentityKey().publicKey
        let carol = PeerID(identityPublicKey: [3])
        try store.saveContact(
            Contact(peerID: bob.peerID, identityKey: Array(bob.rawRepresentation), name: "Bob", state: .contact))
        try store.saveContact(Contact(peerID: carol, identityKey: [], name: "Carol", state: .contact))
        func queue(_ count: Int, to peer: PeerID) throws -> [[UInt8]] {
            try (0..<count).map { number in
                try store.queueAwaitingSession(
                    NewMessage(peer: peer, direction: .sent, state: .queued, sender: me, sentAt: 5, body: "m\(number)"),
                    nextTry: 5
                ).id
            }
        }
        let toBob = try queue(40, to: bob.peerID)
        let toCarol = try queue(2, to: carol)
        let received = [UInt8](repeating: 0xCD, count: 16)
        _ = try store.commitIncoming(
            NewMessage(
                peer: bob.peerID, direction: .received, state: .delivered, sender: bob.peerID, sentAt: 6, receivedAt: 7,
                body: "from bob", id: received),
            contact: try #require(try store.contact(bob.peerID)), sessions: PeerSessions([bobSession]), prekeys: nil)
        // Two of Bob's were read already (a read receipt came first): delivered does not undo it.
        // A received message named in a receipt is not this user's to move.
        let read = try store.applyReceipt([toBob[3], received, toBob[20]], state: .read, from: bob.peerID)
        #expect(read.map(\.id) == [toBob[3], toBob[20]])
        #expect(try store.latestMessages(with: bob.peerID, limit: 100).first { $0.id == received }?.state == .delivered)

        let unknown = [UInt8](repeating: 0, count: 16)
        let named = toBob.reversed() + [toBob[7], toCarol[0], received, unknown, toBob[0]]
        let changed = try store.applyReceipt(Array(named), state: .delivered, from: bob.peerID)
        let expected = toBob.reversed().filter { $0 != toBob[3] && $0 != toBob[20] }
        #expect(changed.map(\.id) == expected, "each once, in the receipt's order")
        #expect(changed.allSatisfy { $0.was == .queued })
        let states = try store.latestMessages(with: bob.peerID, limit: 100)
        #expect(states.filter { $0.direction == .sent && $0.state == .delivered }.count == 38)
        #expect(states.filter { $0.state == .read }.map(\.id) == [toBob[3], toBob[20]])
        #expect(states.first { $0.id == received }?.state == .delivered, "a received message is not moved")
        #expect(try store.outbox(for: bob.peerID, dueBy: .max).isEmpty, "all of Bob's left the outbox")
        #expect(try store.outbox(for: carol, dueBy: .max).map(\.messageID) == toCarol, "Carol's stay")
        #expect(try store.latestMessages(with: carol).map(\.state) == [.queued, .queued])
        #expect(try store.applyReceipt(Array(named), state: .delivered, from: bob.peerID).isEmpty, "applied once")
    }
}
