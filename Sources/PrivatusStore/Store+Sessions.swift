import Foundation
import GRDB
import PrivatusCore
import PrivatusCrypto

/// A message waiting in the outbox: the committed ratchet ciphertext, resent as is.
public struct OutboxItem: Sendable, Hashable {
    public var messageID: [UInt8]
    /// Who it is for.
    public var peer: PeerID
    /// What was committed to send, resent as is; empty while the message waits for a session
    /// (``Store/queueAwaitingSession(_:nextTry:)``).
    public var ciphertext: [UInt8]
    public var attempts: Int
    /// Unix milliseconds of the next attempt.
    public var nextTry: UInt64
    /// The number the message carries (``NewMessage/number``; 0: from before numbering).
    public var number: UInt64 = 0

    public init(
        messageID: [UInt8], peer: PeerID, ciphertext: [UInt8], attempts: Int, nextTry: UInt64, number: UInt64 = 0
    ) {
        self.messageID = messageID
        self.peer = peer
        self.ciphertext = ciphertext
        self.attempts = attempts
        self.nextTry = nextTry
        self.number = number
    }
}

extension Store {
    // MARK: - Sessions

    /// The sessions with a contact, most recently used first (empty when there are none).
    /// - Throws: ``StoreError/notFound`` when `peer` is not a contact.
    ///
    /// Kept decrypted after the first read (``sessionCache``); a write that commits keeps what it
    /// wrote there instead.
    public func sessions(with peer: PeerID) throws -> PeerSessions {
        let peerIndex = index.peer(peer)
        let key = PageCache<PeerSessions>.Key(scope: peerIndex, detail: [])
        if let cached = sessionCache.value(for: key) { return cached }
        let generation = sessionCache.generation(of: peerIndex)
        let rows = try pool.read { db -> [Row] in
            let contact = try contactPK(peer, in: db)
            return try Row.fetchAll(
                db, sql: "SELECT id, sealed_state FROM sessions WHERE contact_pk = ? ORDER BY ordinal",
                arguments: [contact])
        }
        let sessions = PeerSessions(
            try rows.map { row in
                let state = try sealer.open(
                    row["sealed_state"], table: "sessions", column: "sealed_state", rowID: Array(row["id"] as Data))
                do {
                    return try RatchetSession(serialized: state)
                } catch {
                    throw StoreError.damagedRow(table: "sessions")
                }
            })
        sessionCache.store(sessions, for: key, generation: generation)
        return sessions
    }

    /// Replaces the sessions with a contact (one transaction).
    public func saveSessions(_ sessions: PeerSessions, with peer: PeerID) throws {
        var written: PeerSessions?
        defer { sessionsCommitted(written, with: peer) }
        try write { db in
            try writeSessions(sessions, peer: peer, contact: try contactPK(peer, in: db), in: db)
        }
        written = sessions
    }

    /// The skipped message keys all stored sessions may hold together by default: ≈ 80 bytes each in
    /// memory, so the node's worst case stays a few megabytes however many peers make it skip.
    public static let defaultSkippedKeyBudget = 50_000

    /// How many skipped keys `peer`'s sessions may hold after the next message: what the
    /// node-wide budget leaves once every other contact's stored sessions are counted, and at
    /// most ``RatchetSession/maximumStoredSkippedKeys``. Pass it as the `skippedKeyAllowance`
    /// of ``PeerSessions``' decryption.
    public func skippedKeyAllowance(for peer: PeerID) throws -> Int {
        let others = try skippedKeys.heldByOthers(than: index.peer(peer), load: loadSkippedKeyLedger)
        return max(0, min(RatchetSession.maximumStoredSkippedKeys, skippedKeyBudget - others))
    }

    /// Reads every stored session's skipped keys inside the writer's transaction (so no session
    /// write interleaves) and installs the ledger there.
    func loadSkippedKeyLedger() throws {
        try pool.write { db in
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT c.peer_index, s.id, s.sealed_state FROM sessions s JOIN contacts c ON c.pk = s.contact_pk")
            var ledger: [Data: Int] = [:]
            for row in rows {
                let state = try sealer.open(
                    row["sealed_state"], table: "sessions", column: "sealed_state", rowID: Array(row["id"] as Data))
                guard let session = try? RatchetSession(serialized: state) else {
                    throw StoreError.damagedRow(table: "sessions")
                }
                ledger[row["peer_index"], default: 0] += session.skippedKeyCount
            }
            skippedKeys.install(ledger)
        }
    }

    /// Commits, in one durable transaction, everything that sending a message changes: the
    /// advanced sessions, the message itself (queued) and the ciphertext in the outbox. Only
    /// after this returns may the ciphertext leave the node; a retry resends the stored bytes.
    public func commitOutgoing(
        _ message: NewMessage,
        ciphertext: [UInt8],
        sessions: PeerSessions,
        nextTry: UInt64,
        deadline: UInt64? = nil,
        searchable: Bool = true
    ) throws -> StoredMessage {
        try commitOutgoing(
            [(message, ciphertext)], sessions: [message.peer: sessions], nextTry: nextTry, deadline: deadline,
            searchable: searchable)[0]
    }

    /// Commits several outgoing messages (to any peers) in one durable transaction — a group
    /// commit: the sessions of each peer as advanced by all of them, the messages (`queued`) in
    /// order, and each one's bytes in the outbox (empty for a message that waits for a session).
    public func commitOutgoing(
        _ items: [(message: NewMessage, ciphertext: [UInt8])],
        sessions: [PeerID: PeerSessions],
        nextTry: UInt64,
        deadline: UInt64? = nil,
        searchable: Bool = true
    ) throws -> [StoredMessage] {
        guard !items.isEmpty else { return [] }
        let prepared = try prepare(items.map(\.message), searchable: searchable)
        let outbox = try items.map { item -> (id: [UInt8], sealed: Data) in
            let id = Self.newRowID()
            return (id, try sealer.seal(item.ciphertext, table: "outbox", column: "sealed_ciphertext", rowID: id))
        }
        var committed = false
        defer { for (peer, written) in sessions { sessionsCommitted(committed ? written : nil, with: peer) } }
        let stored = try write { db -> [StoredMessage] in
            for (peer, peerSessions) in sessions {
                try writeSessions(peerSessions, peer: peer, contact: try contactPK(peer, in: db), in: db)
            }
            for item in items { _ = try contactPK(item.message.peer, in: db) }
            let stored = try insert(prepared, in: db)
            for (offset, (message, entry)) in zip(stored, outbox).enumerated() {
                try insertOutboxEntry(
                    id: entry.id, messageID: message.id, nextTry: nextTry, sealed: entry.sealed, deadline: deadline,
                    number: items[offset].message.number, in: db)
            }
            try recordSentNumbers(items.map(\.message), in: db)
            return stored
        }
        committed = true
        invalidatePages(of: items.map(\.message))
        return stored
    }

    /// Adds the outbox entry of the message stored with `messageID`, keyed by the message's key.
    /// The key is read in the statement, not passed as a value that could be NULL: a NULL
    /// `INTEGER PRIMARY KEY` would make SQLite choose one, maybe another message's.
    func insertOutboxEntry(
        id: [UInt8], messageID: [UInt8], nextTry: UInt64, sealed: Data, deadline: UInt64?, number: UInt64,
        in db: Database
    ) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO outbox (id, message_pk, next_try, sealed_ciphertext, deadline, number)
                SELECT ?, pk, ?, ?, ?, ? FROM messages WHERE id = ?
                """
        ).execute(arguments: [
            Data(id), Int64(clamping: nextTry), sealed, deadline.map { Int64(clamping: $0) },
            Int64(clamping: number), Data(messageID),
        ])
        guard db.changesCount == 1 else { throw StoreError.notFound }
    }

    /// The outbox entries due by `now` (Unix milliseconds), by conversation, each one's oldest first.
    public func outbox(dueBy now: UInt64, limit: Int = 100) throws -> [OutboxItem] {
        try outbox(where: "o.next_try <= ?", arguments: [Int64(clamping: now)], limit: limit)
    }

    /// `peer`'s outbox entries due by `now`, oldest first, but for the messages in `skipping`
    /// (read, not opened; they count towards `limit`).
    public func outbox(
        for peer: PeerID, dueBy now: UInt64, limit: Int = 100, skipping: Set<[UInt8]> = []
    ) throws -> [OutboxItem] {
        try readOnWriter { db in
            guard let range = try conversationRange(with: peer, in: db) else { return [] }
            return try outbox(
                where: "o.next_try <= ? AND o.message_pk >= ? AND o.message_pk < ?",
                arguments: [Int64(clamping: now), range.lowerBound, range.upperBound], limit: limit, peer: peer,
                skipping: skipping, in: db)
        }
    }

    /// - Parameter peer: the peer of every entry, when the condition names one conversation
    ///   (its details are then not opened once per row).
    func outbox(
        where condition: String, arguments: [any DatabaseValueConvertible], limit: Int, peer: PeerID? = nil,
        skipping: Set<[UInt8]> = []
    ) throws -> [OutboxItem] {
        try readOnWriter { db in
            try outbox(where: condition, arguments: arguments, limit: limit, peer: peer, skipping: skipping, in: db)
        }
    }

    /// - Parameter condition: one of a few fixed conditions (the statement is cached by its text).
    func outbox(
        where condition: String, arguments: [any DatabaseValueConvertible], limit: Int, peer: PeerID?,
        skipping: Set<[UInt8]>, in db: Database
    ) throws -> [OutboxItem] {
        // A cursor: the rows of messages skipped (on their way already, often most of them) are
        // not copied, blobs included, only to be dropped.
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT m.id AS message_id, o.id, o.attempts, o.next_try, o.number, o.sealed_ciphertext,
                           c.id AS conversation_id, c.sealed_details
                    FROM outbox o JOIN messages m ON m.pk = o.message_pk
                    JOIN conversations c ON c.pk = (m.pk >> 32)
                    WHERE \(condition) ORDER BY o.message_pk LIMIT ?
                    """),
            arguments: StatementArguments(arguments + [limit]))
        var items: [OutboxItem] = []
        while let row = try rows.next() {
            guard let messageID = try row.withUnsafeData(atIndex: 0, { $0.map { Array($0) } }) else {
                throw StoreError.damagedRow(table: "messages")
            }
            if skipping.contains(messageID) { continue }
            items.append(
                OutboxItem(
                    messageID: messageID,
                    peer: try peer ?? conversationPeer(row),
                    ciphertext: try sealer.open(
                        row["sealed_ciphertext"], table: "outbox", column: "sealed_ciphertext",
                        rowID: Array(row["id"] as Data)),
                    attempts: row["attempts"],
                    nextTry: UInt64(row["next_try"] as Int64),
                    number: UInt64(max(0, row["number"] as Int64))))
        }
        return items
    }

    /// The number this node gave its latest message to `peer` (0: none yet).
    public func lastSentNumber(to peer: PeerID) throws -> UInt64 {
        try pool.read { db in
            let number = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT last_sent_number FROM conversations WHERE conversation_index = ?"),
                arguments: [index.conversation(with: peer)])
            return UInt64(max(0, number ?? 0))
        }
    }

    /// Raises each conversation's `last_sent_number` to the highest number among `messages`.
    func recordSentNumbers(_ messages: [NewMessage], in db: Database) throws {
        var highest: [PeerID: UInt64] = [:]
        for message in messages where message.number > 0 {
            highest[message.peer] = max(highest[message.peer] ?? 0, message.number)
        }
        let raise = try db.cachedStatement(
            sql: """
                UPDATE conversations SET last_sent_number = max(last_sent_number, ?) WHERE conversation_index = ?
                """)
        for (peer, number) in highest {
            try raise.execute(arguments: [Int64(clamping: number), index.conversation(with: peer)])
        }
    }

    /// The peer of a 1:1 conversation row (columns `conversation_id`, `sealed_details`).
    func conversationPeer(_ row: Row) throws -> PeerID {
        let details = try sealer.open(
            row["sealed_details"], table: "conversations", column: "sealed_details",
            rowID: Array(row["conversation_id"] as Data))
        guard let peer = try? PeerID(bytes: details) else { throw StoreError.damagedRow(table: "conversations") }
        return peer
    }

    /// The message keys of the conversation with `peer`, if it exists.
    func conversationRange(with peer: PeerID, in db: Database) throws -> Range<Int64>? {
        guard
            let conversation = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT pk FROM conversations WHERE conversation_index = ?"),
                arguments: [index.conversation(with: peer)])
        else { return nil }
        return Self.messageKey(
            conversation: conversation, sequence: 0)..<Self.messageKey(
                conversation: conversation + 1, sequence: 0)
    }

    // MARK: - Settings

    /// A setting's value, sealed at rest.
    public func setting(_ name: String) throws -> [UInt8]? {
        guard
            let row = try pool.read({ db in
                try Row.fetchOne(db, sql: "SELECT id, sealed_value FROM settings WHERE name = ?", arguments: [name])
            })
        else { return nil }
        return try sealer.open(
            row["sealed_value"], table: "settings", column: "sealed_value", rowID: Array(row["id"] as Data))
    }

    /// Sets (or replaces) a setting.
    public func setSetting(_ name: String, to value: [UInt8]) throws {
        let id = Self.newRowID()
        let sealed = try sealer.seal(value, table: "settings", column: "sealed_value", rowID: id)
        try write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO settings (name, id, sealed_value) VALUES (?, ?, ?)",
                arguments: [name, Data(id), sealed])
        }
    }

    // MARK: - Internals

    func contactPK(_ peer: PeerID, in db: Database) throws -> Int64 {
        guard
            let pk = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT pk FROM contacts WHERE peer_index = ?"), arguments: [index.peer(peer)])
        else {
            throw StoreError.notFound
        }
        return pk
    }

    /// After a transaction that wrote `peer`'s sessions has ended: the cache keeps what it
    /// committed (`written`), or drops what it held (nil: the transaction failed or did not write
    /// them). Every writer of sessions calls it (or invalidates) after its transaction.
    ///
    /// The writes of one peer's sessions must come one after another, each calling this before
    /// the next begins (they do: the messenger's actor makes them all, without suspending in
    /// between): two writers racing could otherwise keep the older one's sessions.
    func sessionsCommitted(_ written: PeerSessions?, with peer: PeerID) {
        if let written {
            sessionCache.replace(written, for: PageCache<PeerSessions>.Key(scope: index.peer(peer), detail: []))
        } else {
            sessionCache.invalidate(index.peer(peer))
        }
    }

    /// Replaces a contact's sessions inside the caller's transaction and records their skipped
    /// keys in the ledger (in commit order: the writer is serial). If the transaction then fails
    /// the ledger is dropped by ``write(_:)`` and reloaded on next use.
    ///
    /// The rows stay where they are: the session at each ordinal is sealed again under its row's
    /// id and updated in place; only a session more or fewer inserts or deletes a row. A message
    /// sent or received changes one session, and an update leaves the table's two indexes alone
    /// (a delete and an insert under a new random id rewrote a page of each: two more WAL frames
    /// in every commit).
    func writeSessions(_ sessions: PeerSessions, peer: PeerID, contact: Int64, in db: Database) throws {
        let existing = try Row.fetchAll(
            db.cachedStatement(sql: "SELECT id FROM sessions WHERE contact_pk = ? ORDER BY ordinal"),
            arguments: [contact]
        ).map { Array($0["id"] as Data) }
        // Rows hold ordinals 0..<count (every write keeps them so): the one at each ordinal keeps it.
        let update = try db.cachedStatement(sql: "UPDATE sessions SET sealed_state = ? WHERE id = ?")
        let insert = try db.cachedStatement(
            sql: "INSERT INTO sessions (id, contact_pk, ordinal, sealed_state) VALUES (?, ?, ?, ?)")
        for (ordinal, session) in sessions.sessions.enumerated() {
            if ordinal < existing.count {
                let id = existing[ordinal]
                let sealed = try sealer.seal(session.serialized, table: "sessions", column: "sealed_state", rowID: id)
                try update.execute(arguments: [sealed, Data(id)])
            } else {
                let id = Self.newRowID()
                let sealed = try sealer.seal(session.serialized, table: "sessions", column: "sealed_state", rowID: id)
                try insert.execute(arguments: [Data(id), contact, ordinal, sealed])
            }
        }
        if existing.count > sessions.sessions.count {
            let delete = try db.cachedStatement(sql: "DELETE FROM sessions WHERE id = ?")
            for id in existing[sessions.sessions.count...] { try delete.execute(arguments: [Data(id)]) }
        }
        skippedKeys.record(sessions.sessions.reduce(0) { $0 + $1.skippedKeyCount }, for: index.peer(peer))
    }
}

extension Store {
    // MARK: - Prekeys

    /// The profile's prekey store (with its replay cache), if one was saved.
    public func prekeys() throws -> PrekeyStore? {
        guard
            let row = try pool.read({ db in
                try Row.fetchOne(db, sql: "SELECT id, sealed_store FROM prekeys WHERE pk = 1")
            })
        else { return nil }
        let bytes = try sealer.open(
            row["sealed_store"], table: "prekeys", column: "sealed_store", rowID: Array(row["id"] as Data))
        do {
            return try PrekeyStore(serialized: bytes)
        } catch {
            throw StoreError.damagedRow(table: "prekeys")
        }
    }

    /// Saves the prekey store, replacing the previous one (one durable transaction): call it
    /// before publishing a new bundle and before acknowledging a first message.
    public func savePrekeys(_ store: PrekeyStore) throws {
        let id = Self.newRowID()
        let sealed = try sealer.seal(store.serialized, table: "prekeys", column: "sealed_store", rowID: id)
        try write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO prekeys (pk, id, sealed_store) VALUES (1, ?, ?)",
                arguments: [Data(id), sealed])
        }
    }
}
