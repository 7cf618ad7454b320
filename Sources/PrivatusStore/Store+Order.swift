import Foundation
import GRDB
import PrivatusCore

/// A gap in the numbers of a peer's messages: later ones are held (committed, acknowledged, not
/// shown) until the missing ones arrive or the gap is given up.
public struct MessageGap: Sendable, Hashable {
    public var peer: PeerID
    /// The numbers not received yet before the first held message (nil: none is missing, what
    /// is held can be shown; not expected).
    public var missing: ClosedRange<UInt64>?
    /// When the oldest held message was committed, Unix milliseconds.
    public var since: UInt64
    /// How many messages are held.
    public var held: Int
}

/// What committing a batch of received messages did.
public struct IncomingCommit: Sendable, Hashable {
    /// The messages shown now, in order (held ones that waited for the batch included).
    public var shown: [StoredMessage]
    /// The ids of the batch's messages held behind a gap.
    public var held: [[UInt8]]
    /// Whether nothing was written because a message of the batch was already stored.
    public var isResend = false
    /// Gaps given up because too much waited behind them (``Store/maximumHeldMessages``).
    public var gapsGivenUp = 0
}

extension Store {
    // MARK: - Order of received messages (docs/PROTOCOL.md, "Order and gaps")

    /// The most messages held back per conversation; past it the gap is given up.
    public static let maximumHeldMessages = 1_000
    /// The largest message number accepted (2^62: far beyond any real conversation, and every
    /// number + 1 stays representable).
    public static let maximumMessageNumber: UInt64 = 1 << 62

    /// Inserts received messages of one peer inside the caller's transaction in the order they are
    /// to be shown: a message numbered right after the last one shown is shown with every held
    /// message that waited for it; one that comes after a gap is held; one numbered at or below
    /// what was shown (it comes after its gap was given up), or not numbered, is shown as it
    /// arrives. Returns the messages shown, in that order (held ones released included).
    func insertInOrder(
        _ prepared: [PreparedMessage], peer: PeerID, searchable: Bool, in db: Database
    ) throws
        -> IncomingCommit
    {
        guard prepared.contains(where: { $0.message.number > 0 }) else {
            return IncomingCommit(shown: try insert(prepared, in: db), held: [])
        }
        guard prepared.allSatisfy({ $0.message.number <= Self.maximumMessageNumber }) else {
            throw StoreError.outOfRange
        }
        let (conversation, length) = try conversationRow(for: peer, in: db)
        let shownBefore = try shownThrough(conversation, in: db)
        var through = shownBefore
        var held = Set(
            try Int64.fetchAll(
                db.cachedStatement(sql: "SELECT number FROM held_messages WHERE conversation_pk = ?"),
                arguments: [conversation]
            ).map { UInt64(max(0, $0)) })
        var ordered: [PreparedMessage] = []
        var heldNow: [[UInt8]] = []
        var gapsGivenUp = 0
        func release(_ numbers: [UInt64]) throws {
            for number in numbers.sorted() {
                ordered.append(try takeHeld(number, of: peer, in: conversation, searchable: searchable, db: db))
                held.remove(number)
            }
        }
        // An empty conversation (new, or deleted by its user and numbered on by the peer) waits
        // for nothing older than its first message.
        var fresh = length == 0 && held.isEmpty && through == 0
        for item in prepared {
            let number = item.message.number
            guard number > 0 else {
                ordered.append(item)
                continue
            }
            if (item.message.startsSession || fresh), number > through + 1 {
                // A new session's first message: its sender has nothing older still to send.
                try release(held.filter { $0 < number })
                through = number - 1
            }
            fresh = false
            if number <= through {
                // After its gap was given up (or the sender's numbering started again): shown now.
                ordered.append(item)
            } else if number == through + 1 {
                ordered.append(item)
                // A held message with the same number (the sender numbered two messages alike)
                // follows it.
                if held.contains(number) { try release([number]) }
                through = number
                while held.contains(through + 1) {
                    try release([through + 1])
                    through += 1
                }
            } else if held.contains(number) {
                // A number used twice, after a gap: shown now rather than lost.
                ordered.append(item)
            } else if held.count >= Self.maximumHeldMessages {
                // Too much waits behind the gap: given up, everything shown in number order.
                gapsGivenUp += 1
                try release(held.filter { $0 < number })
                ordered.append(item)
                try release(Array(held))
                through = max(number, ordered.map(\.message.number).max() ?? number)
            } else {
                try hold(item, in: conversation, db: db)
                held.insert(number)
                heldNow.append(item.id)
            }
        }
        if through != shownBefore { try setShownThrough(through, of: conversation, in: db) }
        let shown = try insert(ordered, in: db)
        let shownIDs = Set(shown.map(\.id))
        return IncomingCommit(
            shown: shown, held: heldNow.filter { !shownIDs.contains($0) }, gapsGivenUp: gapsGivenUp)
    }

    /// Gives up the gap with `peer`: every held message is shown now, in number order. Returns
    /// them as stored.
    public func releaseHeld(with peer: PeerID, searchable: Bool = true) throws -> [StoredMessage] {
        let stored = try write { db -> [StoredMessage] in
            guard
                let conversation = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT pk FROM conversations WHERE conversation_index = ?"),
                    arguments: [index.conversation(with: peer)])
            else { return [] }
            let numbers = try Int64.fetchAll(
                db, sql: "SELECT number FROM held_messages WHERE conversation_pk = ? ORDER BY number",
                arguments: [conversation]
            ).map { UInt64(max(0, $0)) }
            guard let last = numbers.last else { return [] }
            let released = try numbers.map {
                try takeHeld($0, of: peer, in: conversation, searchable: searchable, db: db)
            }
            try setShownThrough(max(last, try shownThrough(conversation, in: db)), of: conversation, in: db)
            return try insert(released, in: db)
        }
        if !stored.isEmpty { pages.invalidate(index.conversation(with: peer)) }
        return stored
    }

    /// The gap with `peer`, if messages are held.
    public func gap(with peer: PeerID) throws -> MessageGap? {
        try pool.read { db in
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT c.shown_through, min(h.number) AS first, min(h.held_at) AS since,
                                   count(h.pk) AS held
                            FROM conversations c JOIN held_messages h ON h.conversation_pk = c.pk
                            WHERE c.conversation_index = ?
                            """),
                    arguments: [index.conversation(with: peer)]),
                let first = row["first"] as Int64?, let since = row["since"] as Int64?
            else { return nil }
            let through = UInt64(max(0, row["shown_through"] as Int64))
            let firstHeld = UInt64(max(0, first))
            return MessageGap(
                peer: peer, missing: firstHeld > through + 1 ? (through + 1)...(firstHeld - 1) : nil,
                since: UInt64(max(0, since)), held: row["held"])
        }
    }

    /// The peers whose messages are held behind a gap.
    public func peersWithGaps() throws -> [PeerID] {
        let rows = try pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.id AS conversation_id, c.sealed_details FROM conversations c
                    WHERE c.pk IN (SELECT DISTINCT conversation_pk FROM held_messages)
                    """)
        }
        return try rows.map(conversationPeer)
    }

    /// Makes `peer`'s outbox entries numbered within `numbers` due at `now` (the peer asked for
    /// them again); failed entries stay failed. Returns how many became due.
    public func makeDue(for peer: PeerID, numbers: ClosedRange<UInt64>, now: UInt64) throws -> Int {
        try write { db in
            guard let range = try conversationRange(with: peer, in: db) else { return 0 }
            try db.execute(
                sql: """
                    UPDATE outbox SET next_try = ?
                    WHERE message_pk >= ? AND message_pk < ? AND number BETWEEN ? AND ?
                      AND next_try > ? AND next_try < ?
                    """,
                arguments: [
                    Int64(clamping: now), range.lowerBound, range.upperBound, Int64(clamping: numbers.lowerBound),
                    Int64(clamping: numbers.upperBound), Int64(clamping: now), Self.neverDue,
                ])
            return db.changesCount
        }
    }

    // MARK: - Internals

    func shownThrough(_ conversation: Int64, in db: Database) throws -> UInt64 {
        let value = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT shown_through FROM conversations WHERE pk = ?"), arguments: [conversation])
        return UInt64(max(0, value ?? 0))
    }

    func setShownThrough(_ number: UInt64, of conversation: Int64, in db: Database) throws {
        try db.cachedStatement(sql: "UPDATE conversations SET shown_through = ? WHERE pk = ?")
            .execute(arguments: [Int64(clamping: number), conversation])
    }

    /// Holds a received message behind a gap (sealed as a message's content is).
    func hold(_ item: PreparedMessage, in conversation: Int64, db: Database) throws {
        let sealed = try sealer.seal(
            Self.encodeContent(item.message), table: "held_messages", column: "sealed_message", rowID: item.id)
        try db.cachedStatement(
            sql: """
                INSERT INTO held_messages (id, conversation_pk, number, held_at, sealed_message)
                VALUES (?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            Data(item.id), conversation, Int64(clamping: item.message.number),
            Int64(clamping: item.message.receivedAt ?? 0), sealed,
        ])
    }

    /// Takes a held message out of `held_messages`, ready to insert.
    func takeHeld(
        _ number: UInt64, of peer: PeerID, in conversation: Int64, searchable: Bool, db: Database
    ) throws
        -> PreparedMessage
    {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql: "SELECT pk, id, sealed_message FROM held_messages WHERE conversation_pk = ? AND number = ?"),
                arguments: [conversation, Int64(clamping: number)])
        else { throw StoreError.damagedRow(table: "held_messages") }
        let id = Array(row["id"] as Data)
        let content = try sealer.open(
            row["sealed_message"], table: "held_messages", column: "sealed_message", rowID: id)
        let held = try Self.decodeContent(content, id: id, sequence: 0, direction: .received, state: .delivered)
        try db.cachedStatement(sql: "DELETE FROM held_messages WHERE pk = ?").execute(arguments: [row["pk"] as Int64])
        let message = NewMessage(
            peer: peer, direction: .received, state: .delivered, sender: held.sender, sentAt: held.sentAt,
            receivedAt: held.receivedAt, body: held.body, replyTo: held.replyTo, expiresAt: held.expiresAt, id: id,
            number: number)
        return try prepare([message], searchable: searchable)[0]
    }
}
