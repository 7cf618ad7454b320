import Foundation
import GRDB
import PrivatusCore
import PrivatusCrypto

/// What storing a received message did.
public enum IncomingResult: Sendable, Hashable {
    /// Stored now and shown.
    case stored(StoredMessage)
    /// Stored now, held behind a gap in its sender's numbers (not shown yet).
    case held
    /// A message with this id was stored before (the sender resent it): nothing changed.
    case duplicate
}

extension Store {
    // MARK: - Sending

    /// Stores an outgoing message that cannot be encrypted yet (no session with the peer: the
    /// bundle is still to be fetched) as `queued`, with an empty outbox entry that
    /// ``commitSealed(messageID:peer:ciphertext:sessions:)`` fills in.
    public func queueAwaitingSession(
        _ message: NewMessage, nextTry: UInt64, deadline: UInt64? = nil, searchable: Bool = true
    ) throws -> StoredMessage {
        let prepared = try prepare([message], searchable: searchable)
        let outboxID = Self.newRowID()
        let empty = try sealer.seal([], table: "outbox", column: "sealed_ciphertext", rowID: outboxID)
        let stored = try write { db -> StoredMessage in
            _ = try contactPK(message.peer, in: db)
            let stored = try insert(prepared, in: db)[0]
            try insertOutboxEntry(
                id: outboxID, messageID: stored.id, nextTry: nextTry, sealed: empty, deadline: deadline,
                number: message.number, in: db)
            try recordSentNumbers([message], in: db)
            return stored
        }
        invalidatePages(of: [message])
        return stored
    }

    /// Fills in the ciphertext of a message queued by ``queueAwaitingSession(_:nextTry:searchable:)``
    /// and saves the sessions that produced it, in one durable transaction.
    /// - Throws: ``StoreError/notFound`` when the message is no longer waiting (delivered or
    ///   deleted meanwhile): nothing is written.
    public func commitSealed(messageID: [UInt8], peer: PeerID, ciphertext: [UInt8], sessions: PeerSessions) throws {
        var written: PeerSessions?
        defer { sessionsCommitted(written, with: peer) }
        try write { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT o.message_pk, o.id FROM outbox o JOIN messages m ON m.pk = o.message_pk WHERE m.id = ?
                        """,
                    arguments: [Data(messageID)])
            else { throw StoreError.notFound }
            let outboxID = Array(row["id"] as Data)
            let sealed = try sealer.seal(ciphertext, table: "outbox", column: "sealed_ciphertext", rowID: outboxID)
            try writeSessions(sessions, peer: peer, contact: try contactPK(peer, in: db), in: db)
            try db.execute(
                sql: "UPDATE outbox SET sealed_ciphertext = ? WHERE message_pk = ?",
                arguments: [sealed, row["message_pk"] as Int64])
        }
        written = sessions
    }

    /// Records an attempt to send: the outbox entry is tried again at `nextTry` (unless a receipt
    /// removes it first) and a `queued` message becomes `sent`. Returns whether the state changed.
    @discardableResult
    public func recordAttempt(messageID: [UInt8], peer: PeerID, nextTry: UInt64) throws -> Bool {
        try !recordAttempts([(messageID, nextTry)], peer: peer).isEmpty
    }

    /// Records attempts to send several of `peer`'s messages in one transaction (see
    /// ``recordAttempt(messageID:peer:nextTry:)``). Returns the ids that became `sent`.
    public func recordAttempts(_ attempts: [(messageID: [UInt8], nextTry: UInt64)], peer: PeerID) throws -> [[UInt8]] {
        guard !attempts.isEmpty else { return [] }
        let changed = try write { db -> [[UInt8]] in
            let find = try db.cachedStatement(sql: "SELECT pk FROM messages WHERE id = ?")
            // A failed entry stays never due (it failed while the attempt was in flight).
            let retry = try db.cachedStatement(
                sql: "UPDATE outbox SET attempts = attempts + 1, next_try = ? WHERE message_pk = ? AND next_try < ?")
            let sent = try db.cachedStatement(sql: "UPDATE messages SET state = ? WHERE pk = ? AND state = ?")
            var changed: [[UInt8]] = []
            for attempt in attempts {
                guard let pk = try Int64.fetchOne(find, arguments: [Data(attempt.messageID)]) else { continue }
                try retry.execute(arguments: [Int64(clamping: attempt.nextTry), pk, Self.neverDue])
                try sent.execute(arguments: [MessageState.sent.rawValue, pk, MessageState.queued.rawValue])
                if db.changesCount > 0 { changed.append(attempt.messageID) }
            }
            return changed
        }
        if !changed.isEmpty { pages.invalidate(index.conversation(with: peer)) }
        return changed
    }

    /// Applies a receipt from `peer`: each named message this user sent to `peer` moves to
    /// `state` (delivered or read; never backwards) and leaves the outbox. Ids of other
    /// conversations or of received messages are ignored. Returns the ids whose state changed,
    /// each with the state it had.
    ///
    /// Not durable (``write(durable:_:)``): a receipt neither acknowledges a received message nor
    /// advances a ratchet, and one lost in a power failure leaves its messages `sent` in the
    /// outbox, to be resent from their stored ciphertext and acknowledged again, without a
    /// duplicate on the peer's side (a lost read receipt leaves them `delivered`, and one for a
    /// `failed` message leaves it `failed`: docs/PROTOCOL.md, "Storage"). A killed process loses
    /// nothing.
    public func applyReceipt(
        _ messageIDs: [[UInt8]], state: MessageState, from peer: PeerID
    ) throws -> [(id: [UInt8], was: MessageState)] {
        guard state == .delivered || state == .read else { throw StoreError.outOfRange }
        let changed = try write(durable: false) { db -> [(id: [UInt8], was: MessageState)] in
            guard let range = try conversationRange(with: peer, in: db) else { return [] }
            var changed: [(id: [UInt8], was: MessageState)] = []
            var seen = Set<[UInt8]>()
            // Up to 16 messages at a time: one statement finds them, one takes them out of the
            // outbox and one moves their state (instead of three statements per message).
            for start in stride(from: 0, to: messageIDs.count, by: 16) {
                let chunk = messageIDs[start..<min(start + 16, messageIDs.count)].filter { seen.insert($0).inserted }
                guard !chunk.isEmpty else { continue }
                var found: [[UInt8]: (pk: Int64, state: Int)] = [:]
                let rows = try Row.fetchCursor(
                    db.cachedStatement(sql: Self.receiptFindSQL[Self.paddedCount(chunk.count)]!),
                    arguments: StatementArguments(
                        Self.padded(chunk.map { Data($0) })
                            + [MessageDirection.sent.rawValue, range.lowerBound, range.upperBound]))
                while let row = try rows.next() {
                    guard let id = try row.withUnsafeData(atIndex: 2, { $0.map { Array($0) } }) else { continue }
                    found[id] = (row[0], row[1])
                }
                guard !found.isEmpty else { continue }
                var moved: [Int64] = []
                for id in chunk {
                    // delivered (3) → read (4); queued, sent, stored_for_later and failed → either.
                    guard let (pk, current) = found[id], current != state.rawValue,
                        current != MessageState.read.rawValue
                    else { continue }
                    moved.append(pk)
                    changed.append((id, MessageState(rawValue: current) ?? .queued))
                }
                try db.cachedStatement(sql: Self.receiptLeaveSQL[Self.paddedCount(found.count)]!)
                    .execute(arguments: StatementArguments(Self.padded(found.values.map(\.pk))))
                if !moved.isEmpty {
                    try db.cachedStatement(sql: Self.receiptMoveSQL[Self.paddedCount(moved.count)]!)
                        .execute(arguments: StatementArguments([state.rawValue] + Self.padded(moved)))
                }
            }
            return changed
        }
        if !changed.isEmpty { pages.invalidate(index.conversation(with: peer)) }
        return changed
    }

    /// The peers with outbox entries due by `now`.
    public func peersWithDueOutbox(dueBy now: UInt64) throws -> Set<PeerID> {
        let rows = try pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.id AS conversation_id, c.sealed_details FROM conversations c
                    WHERE c.pk IN (SELECT DISTINCT m.pk >> 32 FROM outbox o JOIN messages m ON m.pk = o.message_pk
                                   WHERE o.next_try <= ?)
                    """,
                arguments: [Int64(clamping: now)])
        }
        return Set(try rows.map(conversationPeer))
    }

    /// How many messages wait in the outbox to be delivered (`failed` ones, waiting for a
    /// retry, not counted).
    public func outboxCount() throws -> Int {
        try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE next_try < ?", arguments: [Self.neverDue]) ?? 0
        }
    }

    /// How many messages wait in the outbox for each peer (`failed` ones not counted), and how
    /// many of them are due by `now` (not yet sent, or past their retry time).
    public func outboxCounts(dueBy now: UInt64) throws -> [PeerID: (waiting: Int, due: Int)] {
        // A message's key holds its conversation's in the high 32 bits: no join with messages.
        let rows = try pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT c.id AS conversation_id, c.sealed_details, w.waiting, w.due FROM conversations c
                        JOIN (SELECT message_pk >> 32 AS conversation_pk, count(*) AS waiting, sum(next_try <= ?) AS due
                              FROM outbox WHERE next_try < ? GROUP BY conversation_pk) w ON c.pk = w.conversation_pk
                        """),
                arguments: [Int64(clamping: now), Self.neverDue])
        }
        var counts: [PeerID: (waiting: Int, due: Int)] = [:]
        for row in rows {
            let peer = try conversationPeer(row)
            let (waiting, due): (Int, Int) = (row["waiting"], row["due"])
            counts[peer] = ((counts[peer]?.waiting ?? 0) + waiting, (counts[peer]?.due ?? 0) + due)
        }
        return counts
    }

    /// The `next_try` of an entry whose message failed: never due until `retry`.
    public static let neverDue = Int64.max

    /// Marks `failed` every message whose delivery deadline passed by `now`; their entries stay,
    /// never due, for ``retry(messageID:now:deadline:)``. Returns their ids and peers.
    public func failOverdue(now: UInt64) throws -> [(id: [UInt8], peer: PeerID)] {
        let rows = try write { db -> [Row] in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT m.pk, m.id AS message_id, c.id AS conversation_id, c.sealed_details
                    FROM outbox o JOIN messages m ON m.pk = o.message_pk JOIN conversations c ON c.pk = (m.pk >> 32)
                    WHERE o.deadline IS NOT NULL AND o.deadline <= ? AND o.next_try < ?
                    """,
                arguments: [Int64(clamping: now), Self.neverDue])
            for row in rows {
                let pk: Int64 = row["pk"]
                try db.execute(
                    sql: "UPDATE outbox SET next_try = ? WHERE message_pk = ?", arguments: [Self.neverDue, pk])
                try db.execute(
                    sql: "UPDATE messages SET state = ? WHERE pk = ?", arguments: [MessageState.failed.rawValue, pk])
            }
            return rows
        }
        let failed = try rows.map { (Array($0["message_id"] as Data), try conversationPeer($0)) }
        for peer in Set(failed.map(\.1)) { pages.invalidate(index.conversation(with: peer)) }
        return failed
    }

    /// Requeues a `failed` message that still has its outbox entry: `queued`, due at `now`, with
    /// a new deadline and its attempts counted from zero. Returns its peer.
    /// - Throws: ``StoreError/notFound`` when no failed message with this id waits for a retry
    ///   (it was delivered, or its peer was blocked or removed).
    public func retry(messageID: [UInt8], now: UInt64, deadline: UInt64?) throws -> PeerID {
        let peer = try write { db -> PeerID in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT m.pk, c.id AS conversation_id, c.sealed_details
                        FROM outbox o JOIN messages m ON m.pk = o.message_pk JOIN conversations c ON c.pk = (m.pk >> 32)
                        WHERE m.id = ? AND m.state = ?
                        """,
                    arguments: [Data(messageID), MessageState.failed.rawValue])
            else { throw StoreError.notFound }
            let pk: Int64 = row["pk"]
            try db.execute(
                sql: "UPDATE outbox SET next_try = ?, deadline = ?, attempts = 0 WHERE message_pk = ?",
                arguments: [Int64(clamping: now), deadline.map { Int64(clamping: $0) }, pk])
            try db.execute(
                sql: "UPDATE messages SET state = ? WHERE pk = ?", arguments: [MessageState.queued.rawValue, pk])
            return try conversationPeer(row)
        }
        pages.invalidate(index.conversation(with: peer))
        return peer
    }

    /// Puts off `peer`'s due outbox entries until `until` (the peer could not be reached, or its
    /// bundle not fetched: not an attempt).
    public func deferOutbox(for peer: PeerID, until: UInt64) throws {
        try write { db in
            guard let range = try conversationRange(with: peer, in: db) else { return }
            try db.execute(
                sql: """
                    UPDATE outbox SET next_try = ? WHERE next_try < ?
                    AND message_pk >= ? AND message_pk < ?
                    """,
                arguments: [Int64(clamping: until), Int64(clamping: until), range.lowerBound, range.upperBound])
        }
    }

    /// Takes `peer`'s messages out of the outbox and marks them `failed` (the peer was blocked or
    /// removed). Returns their ids.
    @discardableResult
    public func failOutbox(for peer: PeerID) throws -> [[UInt8]] {
        let ids = try write { db -> [[UInt8]] in
            guard let range = try conversationRange(with: peer, in: db) else { return [] }
            let ids = try Data.fetchAll(
                db,
                sql: """
                    SELECT m.id FROM outbox o JOIN messages m ON m.pk = o.message_pk
                    WHERE o.message_pk >= ? AND o.message_pk < ? ORDER BY o.message_pk
                    """,
                arguments: [range.lowerBound, range.upperBound])
            try db.execute(
                sql: """
                    UPDATE messages SET state = ? WHERE pk IN
                    (SELECT message_pk FROM outbox WHERE message_pk >= ? AND message_pk < ?)
                    """,
                arguments: [MessageState.failed.rawValue, range.lowerBound, range.upperBound])
            try db.execute(
                sql: "DELETE FROM outbox WHERE message_pk >= ? AND message_pk < ?",
                arguments: [range.lowerBound, range.upperBound])
            return ids.map { Array($0) }
        }
        if !ids.isEmpty { pages.invalidate(index.conversation(with: peer)) }
        return ids
    }

    /// The peer could not decrypt what was sent to it: drops the sessions with `peer` and empties
    /// every outbox entry for it (due at once), so that they are encrypted again, from their
    /// stored text, in a new session. One transaction.
    public func restartSessions(with peer: PeerID, now: UInt64) throws {
        defer { sessionCache.invalidate(index.peer(peer)) }
        try write { db in
            guard let range = try conversationRange(with: peer, in: db) else { return }
            try writeSessions(PeerSessions(), peer: peer, contact: try contactPK(peer, in: db), in: db)
            let rows = try Row.fetchAll(
                db, sql: "SELECT message_pk, id FROM outbox WHERE message_pk >= ? AND message_pk < ?",
                arguments: [range.lowerBound, range.upperBound])
            // Failed entries are emptied too (a retry encrypts them in the new session) but stay
            // never due.
            let update = try db.cachedStatement(
                sql: """
                    UPDATE outbox SET sealed_ciphertext = ?,
                    next_try = CASE WHEN next_try < ? THEN ? ELSE next_try END WHERE message_pk = ?
                    """)
            for row in rows {
                let empty = try sealer.seal(
                    [], table: "outbox", column: "sealed_ciphertext", rowID: Array(row["id"] as Data))
                try update.execute(arguments: [empty, Self.neverDue, Int64(clamping: now), row["message_pk"] as Int64])
            }
        }
    }

    /// The stored message with this id, and the peer of its conversation.
    public func message(id: [UInt8]) throws -> (message: StoredMessage, peer: PeerID)? {
        let row = try pool.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT m.pk, m.id, m.direction, m.state, m.sealed_content, c.id AS conversation_id, c.sealed_details
                    FROM messages m JOIN conversations c ON c.pk = (m.pk >> 32) WHERE m.id = ?
                    """,
                arguments: [Data(id)])
        }
        guard let row else { return nil }
        return (try decodeMessage(row), try conversationPeer(row))
    }

    // MARK: - Receiving

    /// Stores a received message with everything decrypting it changed, in one durable
    /// transaction: the sender's contact row (a new message request, or a learned identity key),
    /// the sessions, the prekey store (when a first message consumed a prekey). Only after this
    /// returns may the node acknowledge the message. A message whose id is already stored is a
    /// resend: nothing is written and ``IncomingResult/duplicate`` is returned.
    public func commitIncoming(
        _ message: NewMessage, contact: Contact?, sessions: PeerSessions, prekeys: PrekeyStore?,
        searchable: Bool = true
    ) throws -> IncomingResult {
        let commit = try commitIncoming(
            [message], contact: contact, sessions: sessions, prekeys: prekeys, searchable: searchable)
        if commit.isResend { return .duplicate }
        if let shown = commit.shown.first(where: { $0.id == message.id }) { return .stored(shown) }
        return .held
    }

    /// Stores messages received from one peer, in order, with what decrypting them changed, in
    /// one durable transaction (a group commit: one fsync for the batch). Numbered messages are
    /// shown in their sender's order: one that comes after a gap is held (stored, not shown) until
    /// the gap is filled or given up (``releaseHeld(with:searchable:)``). Returns the messages
    /// shown now, in order, held ones that waited for these included, and those held. A batch
    /// in which a message's id is already stored writes nothing and is answered
    /// ``IncomingCommit/isResend`` (the caller checks for resends before decrypting, so it is
    /// never expected).
    public func commitIncoming(
        _ messages: [NewMessage], contact: Contact?, sessions: PeerSessions, prekeys: PrekeyStore?,
        searchable: Bool = true
    ) throws -> IncomingCommit {
        guard let peer = messages.first?.peer else { return IncomingCommit(shown: [], held: []) }
        guard messages.allSatisfy({ $0.id != nil && $0.peer == peer }) else { throw StoreError.outOfRange }
        let prepared = try prepare(messages, searchable: searchable)
        let prekeyRowID = Self.newRowID()
        let sealedPrekeys = try prekeys.map {
            try sealer.seal($0.serialized, table: "prekeys", column: "sealed_store", rowID: prekeyRowID)
        }
        var written: PeerSessions?
        defer { sessionsCommitted(written, with: peer) }
        let commit = try write { db -> IncomingCommit in
            let find = try db.cachedStatement(sql: Self.findMessageSQL)
            for message in messages {
                let id = Data(message.id ?? [])
                if try Int.fetchOne(find, arguments: [id, id]) != nil {
                    return IncomingCommit(shown: [], held: [], isResend: true)
                }
            }
            if let contact { try saveContact(contact, in: db) }
            try writeSessions(sessions, peer: peer, contact: try contactPK(peer, in: db), in: db)
            if let sealedPrekeys {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO prekeys (pk, id, sealed_store) VALUES (1, ?, ?)",
                    arguments: [Data(prekeyRowID), sealedPrekeys])
            }
            return try insertInOrder(prepared, peer: peer, searchable: searchable, in: db)
        }
        if !commit.isResend { written = sessions }
        if let contact { contactsWritten(contact.peerID) }
        if !commit.shown.isEmpty { invalidatePages(of: messages) }
        return commit
    }

    /// How many messages the conversation with `peer` holds (both directions, deleted ones
    /// included: the next sequence number; held ones included).
    public func conversationLength(with peer: PeerID) throws -> Int {
        try pool.read { db in
            try Int.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT next_sequence + (SELECT count(*) FROM held_messages WHERE conversation_pk = c.pk)
                        FROM conversations c WHERE conversation_index = ?
                        """),
                arguments: [index.conversation(with: peer)]) ?? 0
        }
    }

    /// How many message requests (contacts in state `request`) are stored.
    public func requestCount() throws -> Int {
        try pool.read { db in
            try Int.fetchOne(
                db, sql: "SELECT count(*) FROM contacts WHERE state = ?", arguments: [ContactState.request.rawValue])
                ?? 0
        }
    }

    /// Whether a message with this id is stored (shown or held).
    public func hasMessage(id: [UInt8]) throws -> Bool {
        try !storedMessageIDs(among: [id]).isEmpty
    }

    /// Which of `ids` name a stored message (shown or held): for a received batch, one lookup of
    /// up to 16 ids at a time instead of one statement per message.
    public func storedMessageIDs(among ids: [[UInt8]]) throws -> Set<[UInt8]> {
        guard !ids.isEmpty else { return [] }
        return try readOnWriter { db in
            var found = Set<[UInt8]>()
            for start in stride(from: 0, to: ids.count, by: 16) {
                let chunk = ids[start..<min(start + 16, ids.count)]
                let values = Self.padded(chunk.map { Data($0) })
                let rows = try Data.fetchCursor(
                    db.cachedStatement(sql: Self.findMessagesSQL[values.count]!),
                    arguments: StatementArguments(values + values))
                while let id = try rows.next() { found.insert(Array(id)) }
            }
            return found
        }
    }

    /// Finds message ids among the shown and the held messages, by the number of ids looked up
    /// (each id is given twice: once per table).
    static let findMessagesSQL = sizedSQL {
        "SELECT id FROM messages WHERE id IN (\($0)) UNION ALL SELECT id FROM held_messages WHERE id IN (\($0))"
    }

    /// Finds a message id among the shown and the held messages (two arguments: the id twice).
    static let findMessageSQL = """
        SELECT 1 FROM messages WHERE id = ? UNION ALL SELECT 1 FROM held_messages WHERE id = ? LIMIT 1
        """

    /// The sizes a batch of values is padded to (with its last value), so that each statement
    /// over a batch is cached in three forms.
    static func paddedCount(_ count: Int) -> Int { count <= 1 ? 1 : count <= 4 ? 4 : 16 }

    static func padded<Value>(_ values: [Value]) -> [Value] {
        values + Array(repeating: values.last!, count: paddedCount(values.count) - values.count)
    }

    static func sizedSQL(_ make: (String) -> String) -> [Int: String] {
        Dictionary(
            uniqueKeysWithValues: [1, 4, 16].map { ($0, make(Array(repeating: "?", count: $0).joined(separator: ","))) }
        )
    }

    /// A receipt's messages this user sent in one conversation (the ids, then the direction and
    /// the conversation's range of keys).
    static let receiptFindSQL = sizedSQL {
        "SELECT pk, state, id FROM messages WHERE id IN (\($0)) AND direction = ? AND pk >= ? AND pk < ?"
    }
    static let receiptLeaveSQL = sizedSQL { "DELETE FROM outbox WHERE message_pk IN (\($0))" }
    static let receiptMoveSQL = sizedSQL { "UPDATE messages SET state = ? WHERE pk IN (\($0))" }
}

extension Store {
    /// Marks every received message from `peer` that is not yet `read` as read; returns their
    /// ids (for the read receipt), oldest first.
    public func markRead(from peer: PeerID) throws -> [[UInt8]] {
        let ids = try write { db -> [[UInt8]] in
            guard let keys = try conversationRange(with: peer, in: db) else { return [] }
            let range: [any DatabaseValueConvertible] = [
                MessageDirection.received.rawValue, MessageState.read.rawValue, keys.lowerBound, keys.upperBound,
            ]
            let ids = try Data.fetchAll(
                db,
                sql: "SELECT id FROM messages WHERE direction = ? AND state != ? AND pk >= ? AND pk < ? ORDER BY pk",
                arguments: StatementArguments(range))
            try db.execute(
                sql: "UPDATE messages SET state = ? WHERE direction = ? AND state != ? AND pk >= ? AND pk < ?",
                arguments: StatementArguments([MessageState.read.rawValue] + range))
            return ids.map { Array($0) }
        }
        if !ids.isEmpty { pages.invalidate(index.conversation(with: peer)) }
        return ids
    }
}
