import Foundation
import GRDB
import PrivatusCore
import Synchronization

extension Store {
    /// The largest message body stored (the largest padded plaintext a session carries).
    public static let maximumBodyBytes = 1024 * 1024

    // MARK: - Contacts

    /// Adds a contact, or refuses with a SQLite constraint error when the PeerID is already one.
    public func addContact(_ contact: Contact) throws {
        let id = Self.newRowID()
        let (identity, profile) = try sealContact(contact, rowID: id)
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO contacts (id, peer_index, state, verified, sealed_identity, sealed_profile)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    Data(id), index.peer(contact.peerID), contact.state.rawValue, contact.verified, identity, profile,
                ])
        }
        contactsWritten(contact.peerID)
    }

    /// Adds the contact, or replaces what is stored for its PeerID (its sessions and messages stay).
    public func saveContact(_ contact: Contact) throws {
        try write { db in try saveContact(contact, in: db) }
        contactsWritten(contact.peerID)
    }

    func saveContact(_ contact: Contact, in db: Database) throws {
        let peerIndex = index.peer(contact.peerID)
        if let existing = try Data.fetchOne(
            db, sql: "SELECT id FROM contacts WHERE peer_index = ?", arguments: [peerIndex])
        {
            let (identity, profile) = try sealContact(contact, rowID: Array(existing))
            try db.execute(
                sql: """
                    UPDATE contacts SET state = ?, verified = ?, sealed_identity = ?, sealed_profile = ?
                    WHERE peer_index = ?
                    """,
                arguments: [contact.state.rawValue, contact.verified, identity, profile, peerIndex])
        } else {
            let id = Self.newRowID()
            let (identity, profile) = try sealContact(contact, rowID: id)
            try db.execute(
                sql: """
                    INSERT INTO contacts (id, peer_index, state, verified, sealed_identity, sealed_profile)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [Data(id), peerIndex, contact.state.rawValue, contact.verified, identity, profile])
        }
    }

    /// Removes a contact and its sessions; the conversation stays. Returns whether it existed.
    @discardableResult
    public func removeContact(_ peer: PeerID) throws -> Bool {
        // Its sessions go with it (ON DELETE CASCADE).
        defer { sessionCache.invalidate(index.peer(peer)) }
        let removed = try write { db in
            try db.execute(sql: "DELETE FROM contacts WHERE peer_index = ?", arguments: [index.peer(peer)])
            return db.changesCount > 0
        }
        contactsWritten(peer)
        return removed
    }

    /// `sealed_identity` = PeerID (32) ‖ identity key (32, absent while unknown);
    /// `sealed_profile` = version u8 (1) ‖ name length u16 ‖ name ‖ last seen u64 (0: never) ‖
    /// address count u8 ‖ (length u8 ‖ address)*. (Rows written before addresses existed hold
    /// the name's UTF-8 alone; they are read as such.)
    func sealContact(_ contact: Contact, rowID id: [UInt8]) throws -> (identity: Data, profile: Data) {
        let name = Array(contact.name.utf8.prefix(Int(UInt16.max)))
        var profile: [UInt8] = [1]
        profile.appendBigEndian(UInt16(name.count))
        profile += name
        profile.appendBigEndian(contact.lastSeen ?? 0)
        let addresses = contact.addresses.prefix(Contact.maximumAddresses).map { Array($0.utf8.prefix(255)) }
        profile.append(UInt8(addresses.count))
        for address in addresses {
            profile.append(UInt8(address.count))
            profile += address
        }
        let secret = contact.presenceSecret.count == Contact.presenceSecretBytes ? contact.presenceSecret : []
        profile.append(UInt8(secret.count))
        profile += secret
        return (
            try sealer.seal(
                contact.peerID.bytes + contact.identityKey, table: "contacts", column: "sealed_identity", rowID: id),
            try sealer.seal(profile, table: "contacts", column: "sealed_profile", rowID: id)
        )
    }

    /// The contact with this PeerID, if any.
    public func contact(_ peerID: PeerID) throws -> Contact? {
        let peerIndex = index.peer(peerID)
        let key = PageCache<Contact?>.Key(scope: peerIndex, detail: [])
        if let cached = contactCache.value(for: key) { return cached }
        let generation = contactCache.generation(of: peerIndex)
        let contact = try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM contacts WHERE peer_index = ?", arguments: [peerIndex])
        }.map(decodeContact)
        contactCache.store(contact, for: key, generation: generation)
        return contact
    }

    /// Every contact, requests and blocked ones included, in the order they were added.
    ///
    /// A contact whose decrypted value ``contact(_:)`` keeps is taken from there instead of being
    /// opened again (the value ``contact(_:)`` returns for it: the cache drops an entry once a
    /// write to that contact has committed).
    public func contacts() throws -> [Contact] {
        // Kept until a write to any contact (a send names its peer, and a name is found among
        // them all).
        let key = PageCache<[Contact]>.Key(scope: Self.contactListScope, detail: [])
        if let cached = contactListCache.value(for: key) { return cached }
        let generation = contactListCache.generation(of: Self.contactListScope)
        let contacts = try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM contacts ORDER BY pk") }.map {
            row in
            let key = PageCache<Contact?>.Key(scope: row["peer_index"], detail: [])
            if let cached = contactCache.value(for: key), let contact = cached { return contact }
            return try decodeContact(row)
        }
        contactListCache.store(contacts, for: key, generation: generation)
        return contacts
    }

    /// The scope of ``contactListCache``'s one entry.
    static let contactListScope = Data([0])

    /// Call after a write to `peer`'s contact row has committed: its cached contact and the
    /// cached list are not served again.
    func contactsWritten(_ peer: PeerID) {
        contactCache.invalidate(index.peer(peer))
        contactListCache.invalidate(Self.contactListScope)
    }

    func decodeContact(_ row: Row) throws -> Contact {
        let id = Array(row["id"] as Data)
        let identity = try sealer.open(row["sealed_identity"], table: "contacts", column: "sealed_identity", rowID: id)
        let profile = try sealer.open(row["sealed_profile"], table: "contacts", column: "sealed_profile", rowID: id)
        guard identity.count >= 32, let state = ContactState(rawValue: row["state"]),
            let peer = try? PeerID(bytes: Array(identity[0..<32]))
        else { throw StoreError.damagedRow(table: "contacts") }
        // A stored identity key must be the one the PeerID is the digest of.
        let key = Array(identity[32...])
        guard key.isEmpty || PeerID(identityPublicKey: key) == peer else {
            throw StoreError.damagedRow(table: "contacts")
        }
        // The first format held the name alone (a name never starts with the control byte 0x01).
        if profile.first != 1 {
            guard let name = String(validating: profile, as: UTF8.self) else {
                throw StoreError.damagedRow(table: "contacts")
            }
            return Contact(peerID: peer, identityKey: key, name: name, state: state, verified: row["verified"])
        }
        var reader = ByteReader(profile)
        guard reader.readUInt8() == 1, let nameLength = reader.readUInt16(),
            let nameBytes = reader.read(Int(nameLength)),
            let name = String(validating: nameBytes, as: UTF8.self), let lastSeen = reader.readUInt64(),
            let count = reader.readUInt8()
        else { throw StoreError.damagedRow(table: "contacts") }
        var addresses: [String] = []
        for _ in 0..<count {
            guard let length = reader.readUInt8(), let bytes = reader.read(Int(length)),
                let address = String(validating: bytes, as: UTF8.self)
            else { throw StoreError.damagedRow(table: "contacts") }
            addresses.append(address)
        }
        // Then, since presence records, the contact's presence secret (absent in older rows).
        var presenceSecret: [UInt8] = []
        if reader.remaining > 0 {
            guard let length = reader.readUInt8(), length == 0 || Int(length) == Contact.presenceSecretBytes,
                let bytes = reader.read(Int(length))
            else { throw StoreError.damagedRow(table: "contacts") }
            presenceSecret = bytes
        }
        guard reader.remaining == 0 else { throw StoreError.damagedRow(table: "contacts") }
        return Contact(
            peerID: peer, identityKey: key, name: name, state: state, verified: row["verified"],
            addresses: addresses, lastSeen: lastSeen == 0 ? nil : lastSeen, presenceSecret: presenceSecret)
    }

    // MARK: - Messages

    /// Stores messages in one transaction, each at the next sequence number of its conversation
    /// (created on first use), with its search tokens. Returns them as stored.
    /// - Parameter searchable: whether to index the bodies for search (a user may turn search
    ///   off; ``indexForSearch(_:)`` adds them later).
    @discardableResult
    public func append(_ messages: [NewMessage], searchable: Bool = true) throws -> [StoredMessage] {
        let prepared = try prepare(messages, searchable: searchable)
        let stored = try write { db in try insert(prepared, in: db) }
        invalidatePages(of: messages)
        return stored
    }

    /// A message sealed and tokenized outside the write transaction.
    struct PreparedMessage {
        var id: [UInt8]
        var message: NewMessage
        var content: Data
        var tokens: [Data]
    }

    func prepare(_ messages: [NewMessage], searchable: Bool) throws -> [PreparedMessage] {
        for message in messages
        where message.body.utf8.count > Self.maximumBodyBytes || (message.attachment?.count ?? 0) > 4096 {
            throw StoreError.tooLarge
        }
        return try messages.map { message in
            let id = message.id ?? Self.newRowID()
            guard id.count == 16 else { throw StoreError.outOfRange }
            let content = try sealer.seal(
                Self.encodeContent(message), table: "messages", column: "sealed_content", rowID: id)
            return PreparedMessage(
                id: id, message: message, content: content,
                tokens: searchable ? BlindIndex.words(of: message.body).map(index.token) : [])
        }
    }

    /// Inserts prepared messages inside the caller's transaction; returns them as stored.
    func insert(_ prepared: [PreparedMessage], in db: Database) throws -> [StoredMessage] {
        var conversations: [PeerID: (pk: Int64, next: Int64)] = [:]
        let insertMessage = try db.cachedStatement(
            sql: """
                INSERT INTO messages (pk, ordinal, id, direction, state, expires_hour, sealed_content)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
        let insertToken = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO search_tokens (token, message_ordinal) VALUES (?, ?)")
        var ordinal = try ordinals.reserve(prepared.count, in: db)
        var stored: [StoredMessage] = []
        stored.reserveCapacity(prepared.count)
        for item in prepared {
            var conversation = try conversations[item.message.peer] ?? conversationRow(for: item.message.peer, in: db)
            guard conversation.next < Self.sequencesPerConversation else { throw StoreError.tooLarge }
            try insertMessage.execute(arguments: [
                Self.messageKey(conversation: conversation.pk, sequence: conversation.next), ordinal, Data(item.id),
                item.message.direction.rawValue, item.message.state.rawValue,
                item.message.expiresAt.map { Int64($0 / Self.millisecondsPerHour) }, item.content,
            ])
            for token in item.tokens { try insertToken.execute(arguments: [token, ordinal]) }
            stored.append(Self.stored(item.message, id: item.id, sequence: conversation.next))
            ordinal += 1
            conversation.next += 1
            conversations[item.message.peer] = conversation
        }
        let advance = try db.cachedStatement(sql: "UPDATE conversations SET next_sequence = ? WHERE pk = ?")
        for (_, conversation) in conversations {
            try advance.execute(arguments: [conversation.next, conversation.pk])
        }
        return stored
    }

    /// Sequence numbers a conversation can use: the low 32 bits of a message's key.
    static let sequencesPerConversation: Int64 = 1 << 32

    /// A message's key: its conversation's row number in the high bits, its sequence number in
    /// the low 32, so that the messages of a conversation are neighbours in the table.
    static func messageKey(conversation: Int64, sequence: Int64) -> Int64 {
        conversation << 32 | sequence
    }

    /// Gives out message ordinals from blocks reserved in `counters`: the stored value is above
    /// every ordinal given out, so ordinals never go back, even when the newest messages are
    /// deleted (a token left behind could otherwise point at a later message) or the node
    /// restarts (it goes on from the stored value, leaving the rest of a block unused). Raising
    /// the value once per ``block`` messages, not in every commit that adds one, leaves a page
    /// out of those commits; reading it in each transaction costs no write.
    final class Ordinals: Sendable {
        /// How many ordinals one write of `counters` reserves.
        static let block: Int64 = 1024

        /// The next ordinal and the reservation this object last stored; nil: none yet.
        private let state = Mutex<(next: Int64, reserved: Int64)?>(nil)

        /// `count` consecutive ordinals for the caller's write transaction, raising the
        /// reservation in it when they go past it. Returns the first.
        ///
        /// The block is used only while `counters` still holds the reservation this object
        /// stored. Otherwise (its transaction rolled back, or another `Store` on the same file
        /// reserved since) it goes on from the stored value, above anything given out from
        /// either reservation.
        func reserve(_ count: Int, in db: Database) throws -> Int64 {
            let stored = try Self.stored(in: db)
            var (next, reserved) = state.withLock { $0 } ?? (stored, stored)
            if reserved != stored { (next, reserved) = (stored, stored) }
            if next + Int64(count) > reserved {
                reserved = next + Int64(count) + Self.block
                try db.cachedStatement(sql: "UPDATE counters SET value = ? WHERE name = 'message_ordinal'")
                    .execute(arguments: [reserved])
            }
            state.withLock { $0 = (next + Int64(count), reserved) }
            return next
        }

        /// The stored reservation (the first ordinal never given out, for a store written before
        /// blocks).
        static func stored(in db: Database) throws -> Int64 {
            guard
                let value = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT value FROM counters WHERE name = 'message_ordinal'"))
            else { throw StoreError.damagedRow(table: "counters") }
            return value
        }
    }

    /// Call after a commit that added messages: a page read that began before it is never
    /// served again.
    func invalidatePages(of messages: [NewMessage]) {
        for peer in Set(messages.map(\.peer)) { pages.invalidate(index.conversation(with: peer)) }
    }

    /// The latest `limit` messages with `peer` (before sequence `before`, if given), oldest first.
    public func latestMessages(with peer: PeerID, limit: Int = 50, before: Int64? = nil) throws -> [StoredMessage] {
        let conversationIndex = index.conversation(with: peer)
        let key = PageCache<[StoredMessage]>.Key(scope: conversationIndex, detail: [Int64(limit), before ?? -1])
        if let cached = pages.value(for: key) { return cached }
        let generation = pages.generation(of: conversationIndex)
        let rows = try pool.read { db -> [Row] in
            guard
                let conversation = try Int64.fetchOne(
                    db, sql: "SELECT pk FROM conversations WHERE conversation_index = ?", arguments: [conversationIndex]
                )
            else { return [] }
            let bound = min(max(before ?? Self.sequencesPerConversation, 0), Self.sequencesPerConversation)
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT pk, id, direction, state, sealed_content FROM messages
                    WHERE pk >= ? AND pk < ? ORDER BY pk DESC LIMIT ?
                    """,
                arguments: [
                    Self.messageKey(conversation: conversation, sequence: 0),
                    Self.messageKey(conversation: conversation, sequence: 0) + bound, limit,
                ])
        }
        let page = try rows.reversed().map(decodeMessage)
        pages.store(page, for: key, generation: generation)
        return page
    }

    /// Adds the search tokens of messages already stored (found by id); one transaction.
    public func indexForSearch(_ messages: [StoredMessage]) throws {
        let tokens = messages.map { (id: Data($0.id), tokens: BlindIndex.words(of: $0.body).map(index.token)) }
        try write { db in
            let find = try db.cachedStatement(sql: "SELECT ordinal FROM messages WHERE id = ?")
            let insert = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO search_tokens (token, message_ordinal) VALUES (?, ?)")
            for item in tokens {
                guard let ordinal = try Int64.fetchOne(find, arguments: [item.id]) else { continue }
                for token in item.tokens { try insert.execute(arguments: [token, ordinal]) }
            }
        }
    }

    /// Messages containing every word of `query` as a whole word, newest first.
    public func search(_ query: String, limit: Int = 50) throws -> [StoredMessage] {
        let words = BlindIndex.words(of: query)
        guard !words.isEmpty else { return [] }
        let tokens = words.map(index.token)
        let rows = try pool.read { db in
            if tokens.count == 1 {
                // One word: walk the (token, message) primary key backwards, no grouping.
                return try Row.fetchAll(
                    db,
                    sql: """
                        SELECT m.pk, m.id, m.direction, m.state, m.sealed_content
                        FROM search_tokens t JOIN messages m ON m.ordinal = t.message_ordinal
                        WHERE t.token = ? ORDER BY t.message_ordinal DESC LIMIT ?
                        """,
                    arguments: [tokens[0], limit])
            }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT m.pk, m.id, m.direction, m.state, m.sealed_content FROM messages m
                    JOIN (SELECT message_ordinal FROM search_tokens WHERE token IN (\(tokens.map { _ in "?" }.joined(separator: ",")))
                          GROUP BY message_ordinal HAVING count(*) = ?) t ON t.message_ordinal = m.ordinal
                    ORDER BY m.ordinal DESC LIMIT ?
                    """,
                arguments: StatementArguments(tokens + [tokens.count, limit] as [any DatabaseValueConvertible]))
        }
        // Tokens are truncated MACs: confirm each hit on the decrypted text.
        return try rows.map(decodeMessage).filter { words.isSubset(of: BlindIndex.words(of: $0.body)) }
    }

    /// Deletes the conversation with `peer`: its messages and their search tokens go with it
    /// (overwritten on disk: `secure_delete`).
    public func deleteConversation(with peer: PeerID) throws {
        let conversationIndex = index.conversation(with: peer)
        try write { db in
            guard
                let conversation = try Int64.fetchOne(
                    db, sql: "SELECT pk FROM conversations WHERE conversation_index = ?", arguments: [conversationIndex]
                )
            else { return }
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT pk, ordinal, id, direction, state, sealed_content FROM messages WHERE pk >= ? AND pk < ?",
                arguments: [
                    Self.messageKey(conversation: conversation, sequence: 0),
                    Self.messageKey(conversation: conversation + 1, sequence: 0),
                ])
            try deleteMessages(rows.map { ($0["pk"], $0["ordinal"], try decodeMessage($0)) }, in: db)
            try db.execute(sql: "DELETE FROM conversations WHERE pk = ?", arguments: [conversation])
        }
        pages.invalidate(conversationIndex)
    }

    // MARK: - Retention

    static let millisecondsPerHour: UInt64 = 3_600_000

    /// Deletes the disappearing messages whose time has come (`expiresAt ≤ now`, Unix
    /// milliseconds), with their search tokens; returns how many. Candidates are found by their
    /// clear expiry hour and confirmed on the sealed exact time.
    @discardableResult
    public func deleteExpiredMessages(now: UInt64) throws -> Int {
        let deleted = try write { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT pk, ordinal, id, direction, state, sealed_content FROM messages
                    WHERE expires_hour IS NOT NULL AND expires_hour <= ?
                    """,
                arguments: [Int64(now / Self.millisecondsPerHour)])
            let due = try rows.map { ($0["pk"] as Int64, $0["ordinal"] as Int64, try decodeMessage($0)) }.filter {
                _, _, message in message.expiresAt.map { $0 <= now } ?? false
            }
            try deleteMessages(due, in: db)
            return due.count
        }
        if deleted > 0 { pages.invalidateAll() }
        return deleted
    }

    /// Deletes messages and the search tokens of their words, inside the caller's transaction.
    func deleteMessages(_ messages: [(pk: Int64, ordinal: Int64, message: StoredMessage)], in db: Database) throws {
        let deleteToken = try db.cachedStatement(
            sql: "DELETE FROM search_tokens WHERE token = ? AND message_ordinal = ?")
        let deleteMessage = try db.cachedStatement(sql: "DELETE FROM messages WHERE pk = ?")
        for (pk, ordinal, message) in messages {
            for word in BlindIndex.words(of: message.body) {
                try deleteToken.execute(arguments: [index.token(word), ordinal])
            }
            try deleteMessage.execute(arguments: [pk])
        }
    }

    // MARK: - Internals

    func conversationRow(for peer: PeerID, in db: Database) throws -> (pk: Int64, next: Int64) {
        let key = index.conversation(with: peer)
        let find = try db.cachedStatement(
            sql: "SELECT pk, next_sequence FROM conversations WHERE conversation_index = ?")
        if let row = try Row.fetchOne(find, arguments: [key]) {
            return (row["pk"], row["next_sequence"])
        }
        let id = Self.newRowID()
        let details = try sealer.seal(peer.bytes, table: "conversations", column: "sealed_details", rowID: id)
        try db.execute(
            sql: "INSERT INTO conversations (id, conversation_index, kind, sealed_details) VALUES (?, ?, 0, ?)",
            arguments: [Data(id), key, details])
        return (db.lastInsertedRowID, 0)
    }

    func decodeMessage(_ row: Row) throws -> StoredMessage {
        let id = Array(row["id"] as Data)
        let content = try sealer.open(row["sealed_content"], table: "messages", column: "sealed_content", rowID: id)
        guard let direction = MessageDirection(rawValue: row["direction"]),
            let state = MessageState(rawValue: row["state"])
        else {
            throw StoreError.damagedRow(table: "messages")
        }
        let sequence = (row["pk"] as Int64) & (Self.sequencesPerConversation - 1)
        return try Self.decodeContent(content, id: id, sequence: sequence, direction: direction, state: state)
    }

    /// `version u8 (1) ‖ sender (32) ‖ sentAt u64 ‖ receivedAt u64 (0: none) ‖ expiresAt u64 (0: none)
    /// ‖ reply flag u8 ‖ [reply-to id (16)] ‖ body length u32 ‖ body (UTF-8) ‖ [attachment length u32
    /// ‖ attachment]` (the attachment only when there is one).
    static func encodeContent(_ message: NewMessage) -> [UInt8] {
        var out: [UInt8] = [1]
        out.reserveCapacity(64 + message.body.utf8.count)
        out += message.sender.bytes
        for value in [message.sentAt, message.receivedAt ?? 0, message.expiresAt ?? 0] { out.appendBigEndian(value) }
        if let replyTo = message.replyTo, replyTo.count == 16 {
            out.append(1)
            out += replyTo
        } else {
            out.append(0)
        }
        out.appendBigEndian(UInt32(message.body.utf8.count))
        out += message.body.utf8
        if let attachment = message.attachment {
            out.appendBigEndian(UInt32(attachment.count))
            out += attachment
        }
        return out
    }

    static func decodeContent(
        _ bytes: [UInt8], id: [UInt8], sequence: Int64, direction: MessageDirection, state: MessageState
    ) throws -> StoredMessage {
        var reader = ByteReader(bytes)
        guard reader.readUInt8() == 1, let sender = reader.read(32), let sentAt = reader.readUInt64(),
            let receivedAt = reader.readUInt64(),
            let expiresAt = reader.readUInt64(), let flag = reader.readUInt8(), flag <= 1
        else { throw StoreError.damagedRow(table: "messages") }
        let replyTo = flag == 1 ? reader.read(16) : nil
        guard flag == 0 || replyTo != nil, let length = reader.readUInt32(), let body = reader.read(Int(length)),
            let text = String(validating: body, as: UTF8.self),
            let senderID = try? PeerID(bytes: sender)
        else { throw StoreError.damagedRow(table: "messages") }
        var attachment: [UInt8]?
        if reader.remaining > 0 {
            guard let length = reader.readUInt32(), let bytes = reader.read(Int(length)), reader.remaining == 0 else {
                throw StoreError.damagedRow(table: "messages")
            }
            attachment = bytes
        }
        return StoredMessage(
            id: id, sequence: sequence, direction: direction, state: state, sender: senderID, sentAt: sentAt,
            receivedAt: receivedAt == 0 ? nil : receivedAt, body: text, replyTo: replyTo,
            expiresAt: expiresAt == 0 ? nil : expiresAt, attachment: attachment)
    }

    static func stored(_ message: NewMessage, id: [UInt8], sequence: Int64) -> StoredMessage {
        StoredMessage(
            id: id, sequence: sequence, direction: message.direction, state: message.state, sender: message.sender,
            sentAt: message.sentAt, receivedAt: message.receivedAt, body: message.body, replyTo: message.replyTo,
            expiresAt: message.expiresAt, attachment: message.attachment)
    }
}
