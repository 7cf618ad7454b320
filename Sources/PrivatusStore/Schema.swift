import GRDB

/// The database schema, as versioned migrations (docs/PROTOCOL.md, "Storage").
///
/// Conventions: every table that holds user data has a random 16-byte `id` (the row's stable
/// identity, part of every sealed value's associated data, assigned before insert); sealed
/// columns are named `sealed_*`; lookup columns are blind indexes (`*_index`); what stays clear
/// is what queries must filter or order on: sequence numbers, small state enums, sizes, counts.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1", migrate: createVersion1)
        migrator.registerMigration("v2", migrate: addOutboxDeadline)
        migrator.registerMigration("v3", migrate: addMessageNumbers)
        migrator.registerMigration("v4", migrate: dropMessagesByState)
        migrator.registerMigration("v5", migrate: keyOutboxByMessage)
        migrator.registerMigration("v6", migrate: mergeOutboxIndexes)
        return migrator
    }

    /// v6: the outbox's two indexes, by next try and by deadline, become one on both columns.
    /// Each message queued wrote an entry into both, and each one delivered took it out of both:
    /// a page of each in both commits (a send's 8 WAL frames, a receipt's 4). What is due is
    /// still found by a range of the first column; the messages past their deadline, looked for
    /// every few seconds, by the entries not failed (`next_try` below ``Store/neverDue``) read
    /// from the index alone.
    static func mergeOutboxIndexes(_ db: Database) throws {
        try db.execute(
            sql: """
                DROP INDEX IF EXISTS outbox_by_next_try;
                DROP INDEX IF EXISTS outbox_by_deadline;
                CREATE INDEX outbox_by_next_try_deadline ON outbox(next_try, deadline);
                """)
    }

    /// v5: the outbox keyed by its message's key (`message_pk INTEGER PRIMARY KEY`, one entry per
    /// message). Every statement finds entries by their message (a receipt's, an attempt's) or
    /// by a conversation's range of message keys, and v1's table had no index on `message_pk`:
    /// each of those scanned the whole outbox, per message named. Its entries now sit in their
    /// conversation's order, as the messages do. `id` stays the random row id that each sealed
    /// ciphertext is bound to, but is no longer indexed (nothing looks an entry up by it): one
    /// page fewer written, at a random place, for each message queued and for each delivered.
    static func keyOutboxByMessage(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE outbox_v5 (
                    message_pk INTEGER PRIMARY KEY REFERENCES messages(pk) ON DELETE CASCADE,
                    id BLOB NOT NULL,                   -- random; the row id its sealed ciphertext is bound to
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_try INTEGER NOT NULL,
                    sealed_ciphertext BLOB NOT NULL,    -- the committed ratchet message, resent as is
                    deadline INTEGER,                   -- Unix ms; NULL: none
                    number INTEGER NOT NULL DEFAULT 0
                );
                -- One entry per message was always the rule; a second one, were there any, would only
                -- resend the same message: dropped rather than leave the profile unopenable.
                INSERT OR IGNORE INTO outbox_v5 (message_pk, id, attempts, next_try, sealed_ciphertext, deadline, number)
                    SELECT message_pk, id, attempts, next_try, sealed_ciphertext, deadline, number FROM outbox ORDER BY pk;
                DROP TABLE outbox;
                ALTER TABLE outbox_v5 RENAME TO outbox;
                CREATE INDEX outbox_by_next_try ON outbox(next_try);
                CREATE INDEX outbox_by_deadline ON outbox(deadline) WHERE deadline IS NOT NULL;
                """)
    }

    /// v4: drops `messages_by_state` (messages whose state is queued or failed), which no query
    /// reads (the outbox finds what waits or failed): every message sent entered it when queued
    /// and left it when delivered, one more page written in each of those two commits.
    static func dropMessagesByState(_ db: Database) throws {
        try db.execute(sql: "DROP INDEX IF EXISTS messages_by_state")
    }

    /// v3: each sender numbers its messages per conversation (docs/PROTOCOL.md, "Order and
    /// gaps"). `conversations.last_sent_number`: the number this node gave its latest message;
    /// `conversations.shown_through`: the peer's messages are shown up to this number without a
    /// gap; `outbox.number`: the number the waiting message carries (0: from before v3); and
    /// `held_messages`: received messages that came after a gap, committed (and acknowledged)
    /// but not shown until the gap is filled or given up.
    static func addMessageNumbers(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE conversations ADD COLUMN last_sent_number INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE conversations ADD COLUMN shown_through INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE outbox ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
                CREATE TABLE held_messages (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,            -- the sender's message id
                    conversation_pk INTEGER NOT NULL REFERENCES conversations(pk) ON DELETE CASCADE,
                    number INTEGER NOT NULL,            -- the sender's number for it
                    held_at INTEGER NOT NULL,           -- Unix ms
                    sealed_message BLOB NOT NULL,       -- as messages.sealed_content
                    UNIQUE (conversation_pk, number)
                );
                """)
    }

    /// v2: each outbox entry's delivery deadline (Unix ms; NULL: none), after which its message
    /// is `failed` and the entry waits for `retry` (its `next_try` is then the largest value).
    static func addOutboxDeadline(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE outbox ADD COLUMN deadline INTEGER")
        try db.execute(sql: "CREATE INDEX outbox_by_deadline ON outbox(deadline) WHERE deadline IS NOT NULL")
    }

    static func createVersion1(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE contacts (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    peer_index BLOB NOT NULL UNIQUE,
                    state INTEGER NOT NULL,             -- 0 contact, 1 request, 2 blocked
                    verified INTEGER NOT NULL DEFAULT 0,
                    sealed_identity BLOB NOT NULL,      -- PeerID, identity key
                    sealed_profile BLOB NOT NULL        -- name, verified-at, last seen
                );
                CREATE TABLE key_changes (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    contact_pk INTEGER NOT NULL REFERENCES contacts(pk) ON DELETE CASCADE,
                    sealed_change BLOB NOT NULL         -- old and new identity key, when
                );
                -- AUTOINCREMENT: a conversation's number, the high bits of its messages' keys, is
                -- never given to another conversation.
                CREATE TABLE conversations (
                    pk INTEGER PRIMARY KEY AUTOINCREMENT,
                    id BLOB NOT NULL UNIQUE,
                    conversation_index BLOB NOT NULL UNIQUE,
                    kind INTEGER NOT NULL,              -- 0 one-to-one, 1 group
                    next_sequence INTEGER NOT NULL DEFAULT 0,
                    sealed_details BLOB NOT NULL        -- peer or group, title, expiry timer
                );
                -- pk = conversation pk << 32 | sequence: a conversation's messages sit together in
                -- the table's b-tree, so its latest page is a few neighbouring pages, not one page
                -- per message. `ordinal` counts insertions over all conversations (search ranks
                -- by it). No foreign key to conversations: deleting one deletes its range of
                -- messages and their search tokens explicitly; `db check` looks for orphans.
                CREATE TABLE messages (
                    pk INTEGER PRIMARY KEY,
                    ordinal INTEGER NOT NULL UNIQUE,
                    id BLOB NOT NULL UNIQUE,
                    direction INTEGER NOT NULL,         -- 0 sent, 1 received
                    state INTEGER NOT NULL,             -- CLI.md message states
                    edited INTEGER NOT NULL DEFAULT 0,
                    expires_hour INTEGER,               -- disappearing messages: the Unix hour they expire in
                    sealed_content BLOB NOT NULL        -- sender, sent/received times, body, reply-to, expires-at
                );
                -- Counters that must never go back, even when the newest rows are deleted.
                CREATE TABLE counters (
                    name TEXT PRIMARY KEY,
                    value INTEGER NOT NULL
                );
                INSERT INTO counters (name, value) VALUES ('message_ordinal', 0);
                CREATE INDEX messages_by_expiry ON messages(expires_hour) WHERE expires_hour IS NOT NULL;
                CREATE INDEX messages_by_state ON messages(state) WHERE state IN (0, 5);
                -- No foreign key and no index by message: a message's tokens are deleted with it
                -- from its decrypted words (Store.deleteMessages), which halves what indexing
                -- writes; `db check` looks for orphans.
                CREATE TABLE search_tokens (
                    token BLOB NOT NULL,
                    message_ordinal INTEGER NOT NULL,
                    PRIMARY KEY (token, message_ordinal)
                ) WITHOUT ROWID;
                CREATE TABLE groups (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    conversation_pk INTEGER NOT NULL UNIQUE REFERENCES conversations(pk) ON DELETE CASCADE,
                    sealed_state BLOB NOT NULL          -- name, group-state hash, sender keys
                );
                CREATE TABLE group_members (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    group_pk INTEGER NOT NULL REFERENCES groups(pk) ON DELETE CASCADE,
                    member_index BLOB NOT NULL,
                    role INTEGER NOT NULL,
                    UNIQUE (group_pk, member_index)
                );
                CREATE TABLE sessions (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    contact_pk INTEGER NOT NULL REFERENCES contacts(pk) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL,           -- 0 = the active session
                    sealed_state BLOB NOT NULL          -- RatchetSession.serialized
                );
                CREATE INDEX sessions_by_contact ON sessions(contact_pk, ordinal);
                CREATE TABLE prekeys (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    sealed_store BLOB NOT NULL          -- PrekeyStore.serialized, replay cache included
                );
                CREATE TABLE file_transfers (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    conversation_pk INTEGER NOT NULL REFERENCES conversations(pk) ON DELETE CASCADE,
                    state INTEGER NOT NULL,
                    size INTEGER NOT NULL,
                    chunk_bitmap BLOB NOT NULL,
                    sealed_file BLOB NOT NULL           -- name, hash
                );
                CREATE TABLE outbox (
                    pk INTEGER PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    message_pk INTEGER NOT NULL REFERENCES messages(pk) ON DELETE CASCADE,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_try INTEGER NOT NULL,
                    sealed_ciphertext BLOB NOT NULL     -- the committed ratchet message, resent as is
                );
                CREATE INDEX outbox_by_next_try ON outbox(next_try);
                CREATE TABLE settings (
                    name TEXT PRIMARY KEY,
                    id BLOB NOT NULL UNIQUE,
                    sealed_value BLOB NOT NULL
                );
                """)
    }
}
