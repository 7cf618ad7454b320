import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import PrivatusStore
import PrivatusTesting
import Testing

/// Each sender numbers its messages per conversation; the store shows one sender's messages in
/// that order, holding those that come after a gap (docs/PROTOCOL.md, "Order and gaps").
@Suite struct MessageOrderTests {
    let scratch: TemporaryDirectory
    let path: String
    let key = SymmetricKey(size: .bits256)
    let store: Store
    let me = PeerID(identityPublicKey: [1])
    let bob = PeerID(identityPublicKey: [2])

    init() throws {
        scratch = try TemporaryDirectory("privatus-order")
        path = scratch.child("privatus.sqlite")
        store = try Store(path: path, databaseKey: key)
        try store.saveContact(Contact(peerID: bob, identityKey: [], name: "Bob", state: .contact))
    }

    /// Bob's message numbered `number`, with text "m<number>" (or `text`).
    func fromBob(_ number: UInt64, _ text: String? = nil, startsSession: Bool = false) -> NewMessage {
        NewMessage(
            peer: bob, direction: .received, state: .delivered, sender: bob, sentAt: 1_000 + number % 1_000,
            receivedAt: 2_000 + number % 1_000, body: text ?? "m\(number)", id: SymmetricKey(size: .bits128).bytes,
            number: number, startsSession: startsSession)
    }

    func receive(_ messages: [NewMessage]) throws -> IncomingCommit {
        try store.commitIncoming(messages, contact: nil, sessions: PeerSessions(), prekeys: nil)
    }

    func shown() throws -> [String] { try store.latestMessages(with: bob, limit: 1_000).map(\.body) }

    /// A received batch's ids are looked up together: every count (through the padded sizes of
    /// 1, 4 and 16 and past them) finds exactly the shown and held ones among unknown ids.
    @Test func storedIDsAreFoundAmongUnknownOnesInBatchesOfEverySize() throws {
        defer { scratch.remove() }
        let shownMessages = (1...20).map { fromBob(UInt64($0)) }
        let heldMessages = (30...34).map { fromBob(UInt64($0)) }
        _ = try receive(shownMessages + heldMessages)
        let known = (shownMessages + heldMessages).compactMap(\.id)
        #expect(try store.gap(with: bob) != nil, "messages 30 to 34 are held")
        let unknown = (0..<40).map { _ in SymmetricKey(size: .bits128).bytes }
        for count in [1, 2, 4, 5, 16, 17, 33, 50] {
            // Known and unknown ids interleaved, and one known id twice.
            let knownPart = Array(known.shuffled().prefix(count / 2))
            let asked = (knownPart + unknown.prefix(count - count / 2) + knownPart.prefix(1)).shuffled()
            #expect(try store.storedMessageIDs(among: asked) == Set(knownPart), "\(count) ids")
        }
        #expect(try store.storedMessageIDs(among: []) == [])
        #expect(try store.storedMessageIDs(among: unknown) == [])
        #expect(try store.storedMessageIDs(among: known) == Set(known))
    }

    @Test func messagesAfterAGapWaitUntilItIsFilledThenAllShowInTheSendersOrder() throws {
        defer { scratch.remove() }
        let one = fromBob(1)
        let three = fromBob(3)
        let four = fromBob(4)
        var commit = try receive([one, three, four])
        #expect(commit.shown.map(\.body) == ["m1"])
        #expect(commit.held == [three.id, four.id].compactMap { $0 })
        #expect(try shown() == ["m1"], "held messages are not shown")
        #expect(try store.hasMessage(id: three.id ?? []), "a held message is known: its resend is a duplicate")
        let gap = try #require(try store.gap(with: bob))
        #expect(gap.missing == 2...2 && gap.held == 2 && gap.since == 2_003)
        #expect(try store.peersWithGaps() == [bob])
        // A resent held message is recognised, nothing written.
        #expect(try receive([three]).isResend)

        commit = try receive([fromBob(2)])
        #expect(commit.shown.map(\.body) == ["m2", "m3", "m4"], "the gap filled: what waited follows in order")
        #expect(commit.held.isEmpty)
        #expect(try shown() == ["m1", "m2", "m3", "m4"])
        #expect(try store.gap(with: bob) == nil && store.peersWithGaps().isEmpty)
        #expect(try store.search("m3").map(\.body) == ["m3"], "a released message is searchable")
    }

    @Test func ourOwnMessagesKeepTheirPlaceBetweenTheSendersMessages() throws {
        defer { scratch.remove() }
        _ = try receive([fromBob(1), fromBob(3)])
        try store.append([
            NewMessage(peer: bob, direction: .sent, state: .delivered, sender: me, sentAt: 3_000, body: "mine")
        ])
        _ = try receive([fromBob(2)])
        // Different senders in the order this node committed them; Bob's own in his order.
        #expect(try shown() == ["m1", "mine", "m2", "m3"])
    }

    @Test func aGapGivenUpShowsWhatWaitedAndALateMessageIsStillShown() throws {
        defer { scratch.remove() }
        _ = try receive([fromBob(1), fromBob(4), fromBob(3)])
        #expect(try store.gap(with: bob)?.missing == 2...2)
        let released = try store.releaseHeld(with: bob)
        #expect(released.map(\.body) == ["m3", "m4"], "in number order, not arrival order")
        #expect(try store.gap(with: bob) == nil)
        #expect(try store.releaseHeld(with: bob).isEmpty)
        // The missing one comes after all: nothing is lost, it is shown where it arrives.
        let late = try receive([fromBob(2)])
        #expect(late.shown.map(\.body) == ["m2"])
        _ = try receive([fromBob(5)])
        #expect(try shown() == ["m1", "m3", "m4", "m2", "m5"])
    }

    @Test func aNewSessionsFirstMessageEndsTheWaitForOlderNumbers() throws {
        defer { scratch.remove() }
        _ = try receive([fromBob(1), fromBob(4)])
        let commit = try receive([fromBob(6, startsSession: true), fromBob(7)])
        #expect(commit.shown.map(\.body) == ["m4", "m6", "m7"])
        #expect(try store.gap(with: bob) == nil)
        // A sender whose numbering started again (its conversation was deleted) is shown as it comes.
        _ = try receive([fromBob(1, "again 1"), fromBob(2, "again 2")])
        #expect(try shown() == ["m1", "m4", "m6", "m7", "again 1", "again 2"])
    }

    @Test func aSendersNumberingThatWentBackOrJumpsTooFarNeverHidesOrCrashes() throws {
        defer { scratch.remove() }
        _ = try receive([fromBob(1), fromBob(2), fromBob(3), fromBob(6)])
        // The sender's numbering went back (a restored backup) and a new session starts at 6,
        // the number of a held message: both are shown, and what follows is not held.
        let commit = try receive([fromBob(6, "new 6", startsSession: true), fromBob(7)])
        #expect(commit.shown.map(\.body) == ["new 6", "m6", "m7"])
        #expect(try store.gap(with: bob) == nil)
        // A number past the largest accepted is refused (the node drops such a message).
        #expect(throws: StoreError.outOfRange) {
            try receive([fromBob(Store.maximumMessageNumber + 1, startsSession: true)])
        }
        #expect(throws: StoreError.outOfRange) { try receive([fromBob(.max)]) }
        #expect(try shown() == ["m1", "m2", "m3", "new 6", "m6", "m7"])
    }

    @Test func aDeletedConversationWaitsForNothingOlderThanItsNextMessage() throws {
        defer { scratch.remove() }
        _ = try receive([fromBob(1), fromBob(2)])
        try store.deleteConversation(with: bob)
        // The user deleted the chat; Bob's next message, numbered on, is shown at once.
        let commit = try receive([fromBob(3, "after delete")])
        #expect(commit.shown.map(\.body) == ["after delete"] && commit.held.isEmpty)
        // A gap after it is a gap again.
        #expect(try receive([fromBob(5)]).held.count == 1)
        #expect(try store.gap(with: bob)?.missing == 4...4)
    }

    @Test func unnumberedMessagesShowAsTheyArrive() throws {
        defer { scratch.remove() }
        let commit = try receive([fromBob(0, "old a"), fromBob(0, "old b")])
        #expect(commit.shown.map(\.body) == ["old a", "old b"] && commit.held.isEmpty)
    }

    @Test func heldMessagesSurviveAReopenAndPastTheLimitTheGapIsGivenUp() throws {
        defer { scratch.remove() }
        _ = try receive([fromBob(1)] + (3...Int(Store.maximumHeldMessages) + 2).map { fromBob(UInt64($0)) })
        #expect(try store.gap(with: bob)?.held == Store.maximumHeldMessages)
        let reopened = try Store(path: path, databaseKey: key)
        #expect(try reopened.peersWithGaps() == [bob])
        #expect(try reopened.latestMessages(with: bob).map(\.body) == ["m1"])
        // One more behind the gap: too much waits, everything is shown in number order.
        let over = UInt64(Store.maximumHeldMessages) + 3
        let commit = try reopened.commitIncoming(
            [fromBob(over)], contact: nil, sessions: PeerSessions(), prekeys: nil)
        #expect(commit.shown.count == Store.maximumHeldMessages + 1)
        #expect(commit.gapsGivenUp == 1, "counted, as a gap given up after its wait is")
        #expect(commit.shown.map(\.body) == (3...over).map { "m\($0)" })
        #expect(try reopened.gap(with: bob) == nil)
        // The one that never came arrives late and is kept.
        _ = try reopened.commitIncoming([fromBob(2)], contact: nil, sessions: PeerSessions(), prekeys: nil)
        #expect(try reopened.latestMessages(with: bob, limit: 2).map(\.body) == ["m\(over)", "m2"])
    }

    @Test func outboxCountsSayWhatWaitsAndWhatIsDuePerPeer() throws {
        defer { scratch.remove() }
        let carol = PeerID(identityPublicKey: [3])
        try store.saveContact(Contact(peerID: carol, identityKey: [], name: "Carol", state: .contact))
        #expect(try store.outboxCounts(dueBy: 1_000).isEmpty)
        func message(to peer: PeerID, _ number: UInt64) -> (message: NewMessage, ciphertext: [UInt8]) {
            (
                NewMessage(
                    peer: peer, direction: .sent, state: .queued, sender: me, sentAt: 10, body: "m\(number)",
                    number: number),
                [UInt8(number)]
            )
        }
        let toBob = try store.commitOutgoing((1...3).map { message(to: bob, $0) }, sessions: [:], nextTry: 100)
        _ = try store.commitOutgoing([message(to: carol, 1)], sessions: [:], nextTry: 100)
        // Two of bob's were sent and wait for their retry time; one is due.
        _ = try store.recordAttempts(toBob.prefix(2).map { ($0.id, 10_000) }, peer: bob)
        let counts = try store.outboxCounts(dueBy: 200)
        #expect(counts.count == 2)
        #expect(counts[bob]?.waiting == 3 && counts[bob]?.due == 1)
        #expect(counts[carol]?.waiting == 1 && counts[carol]?.due == 1)
        #expect(try store.outboxCounts(dueBy: 10_000)[bob]?.due == 3, "at their retry time")
    }

    @Test func sentNumbersAreKeptWithTheOutboxAndAResendRequestMakesOnlyWaitingOnesDue() throws {
        defer { scratch.remove() }
        #expect(try store.lastSentNumber(to: bob) == 0)
        let items = (1...4).map { number in
            (
                message: NewMessage(
                    peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 10, body: "s\(number)",
                    number: UInt64(number)),
                ciphertext: [UInt8(number)]
            )
        }
        let stored = try store.commitOutgoing(items, sessions: [:], nextTry: 100)
        #expect(try store.lastSentNumber(to: bob) == 4)
        #expect(try store.outbox(for: bob, dueBy: 100).map(\.number) == [1, 2, 3, 4])
        // Sent once: due again only at 10,000.
        _ = try store.recordAttempts(stored.map { ($0.id, 10_000) }, peer: bob)
        #expect(try store.outbox(for: bob, dueBy: 200).isEmpty)
        #expect(try store.makeDue(for: bob, numbers: 2...3, now: 200) == 2)
        #expect(try store.outbox(for: bob, dueBy: 200).map(\.number) == [2, 3])
        #expect(try store.makeDue(for: bob, numbers: 9...12, now: 200) == 0, "numbers it does not have")
        // A failed message (its deadline passed) stays failed: only its user retries it.
        let five = try store.commitOutgoing(
            [
                (
                    NewMessage(
                        peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 10, body: "s5", number: 5),
                    [5]
                )
            ], sessions: [:], nextTry: 100, deadline: 250)
        #expect(try store.failOverdue(now: 300).map(\.id) == five.map(\.id))
        #expect(try store.makeDue(for: bob, numbers: 4...5, now: 300) == 1)
        #expect(try store.outbox(for: bob, dueBy: 300).map(\.number) == [2, 3, 4])
        // Numbers never go back, even below a message that waits.
        _ = try store.commitOutgoing(
            [
                (
                    NewMessage(
                        peer: bob, direction: .sent, state: .queued, sender: me, sentAt: 10, body: "s2b", number: 2),
                    [2]
                )
            ], sessions: [:], nextTry: 100)
        #expect(try store.lastSentNumber(to: bob) == 5)
    }
}

extension SymmetricKey {
    fileprivate var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
}
