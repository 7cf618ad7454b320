import CPrivatusSQLite
import Crypto
import Foundation
import GRDB
import PrivatusCore
import PrivatusStore

/// `privatus bench storage`: the sealed database at scale — by default 1,000,000 messages over
/// 1,000 conversations — beside a plaintext reference with the same schema in the same run.
public struct StorageSuite: Sendable {
    public let messages: Int
    public let conversations: Int
    public let batchSize = 100

    public init(messages: Int = 1_000_000, conversations: Int = 1000) {
        self.messages = messages
        self.conversations = max(1, min(conversations, messages))
    }

    public func run() throws -> [String: Double] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "privatus-bench-storage-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let sealedPath = scratch.appendingPathComponent("sealed.sqlite").path
        let rawPath = scratch.appendingPathComponent("raw.sqlite").path

        var generator = SplitMix64(seed: 2026)  // every run stores the same text
        let vocabulary = (0..<2000).map { index in "w\(String(index, radix: 36))x" }
        let bodies = (0..<10_000).map { _ in
            (0..<Int.random(in: 5...20, using: &generator)).map { _ in
                // A skewed choice: low-numbered words are common, as in real text.
                vocabulary[Int(Double(vocabulary.count) * pow(Double.random(in: 0..<1, using: &generator), 3))]
            }.joined(separator: " ")
        }
        let peers = (0..<conversations).map { PeerID(identityPublicKey: withUnsafeBytes(of: UInt64($0)) { Array($0) }) }
        let me = PeerID(identityPublicKey: [UInt8](repeating: 0, count: 32))
        func batch(_ start: Int) -> [NewMessage] {
            (start..<min(start + batchSize, messages)).map { number in
                NewMessage(
                    peer: peers[number % peers.count], direction: number % 2 == 0 ? .sent : .received,
                    state: .delivered,
                    sender: me, sentAt: 1_800_000_000_000 + UInt64(number), body: bodies[number % bodies.count])
            }
        }

        var figures = try Self.smallCommits(in: scratch)
        let clock = ContinuousClock()

        // Sealed: the product's path, search indexing timed separately.
        let key = SymmetricKey(size: .bits256)
        var store: Store? = try Store(path: sealedPath, databaseKey: key)
        // Sealed and plaintext batches alternate, so the machine's noise falls on both alike;
        // the plaintext reference has the same schema and indexes (created by a store) and runs
        // the same statements with the content unsealed. Search indexing of the sealed messages
        // comes in a second pass, so neither pays for the other's pages and checkpoints.
        _ = try Store(path: rawPath, databaseKey: SymmetricKey(size: .bits256))
        let raw = try RawReference(path: rawPath, peers: peers)
        var insertTime = Duration.zero
        var rawTime = Duration.zero
        var indexTime = Duration.zero
        var stored: [[StoredMessage]] = []
        stored.reserveCapacity(messages / batchSize + 1)
        for start in stride(from: 0, to: messages, by: batchSize) {
            let newMessages = batch(start)
            insertTime += try clock.measure { stored.append(try store!.append(newMessages, searchable: false)) }
            rawTime += try raw.insert(newMessages, bodies: newMessages.map { Data($0.body.utf8) })
        }
        for batch in stored {
            indexTime += try clock.measure { try store!.indexForSearch(batch) }
        }
        stored = []
        figures["insert_per_s"] = Double(messages) / insertTime.seconds
        figures["raw_insert_per_s"] = Double(messages) / rawTime.seconds
        figures["insert_of_raw_pct"] = 100 * figures["insert_per_s"]! / figures["raw_insert_per_s"]!
        figures["index_per_s"] = Double(messages) / indexTime.seconds

        // Reads.
        try store!.checkpoint()
        // Reads start with no checkpoint in flight (the indexing pass leaves a large WAL; a
        // concurrent checkpoint on two cores pushes the page p99 to ≈ 4 ms, recorded in
        // BENCHMARKS.md). Distinct conversations, so every page is read and decrypted, never
        // served from the store's page cache.
        var pageTimes: [Double] = []
        for peer in peers.shuffled(using: &generator).prefix(1000) {
            pageTimes.append(try clock.measure { _ = try store!.latestMessages(with: peer, limit: 50) }.seconds * 1000)
        }
        figures["page_p50_ms"] = Self.percentile(pageTimes, 0.50)
        figures["page_p99_ms"] = Self.percentile(pageTimes, 0.99)
        var searchTimes: [Double] = []
        for index in 0..<200 {
            let word = vocabulary[index % 2 == 0 ? index / 2 : vocabulary.count - 1 - index]
            searchTimes.append(try clock.measure { _ = try store!.search(word) }.seconds * 1000)
        }
        figures["search_p50_ms"] = Self.percentile(searchTimes, 0.50)
        figures["search_p99_ms"] = Self.percentile(searchTimes, 0.99)

        try store!.checkpoint()
        figures["bytes_per_message"] = Double(store!.fileBytes(path: sealedPath)) / Double(messages)
        store = nil
        figures["open_ms"] = try clock.measure { store = try Store(path: sealedPath, databaseKey: key) }.seconds * 1000
        figures["messages"] = Double(messages)
        return figures
    }

    /// Durable commits of 1 and of 8 messages into a new store, as the messenger makes them at a
    /// low rate and under load: CPU time (the process's, the checkpointer's included) and wall
    /// time per commit, each the median of 3 rounds of 300 commits. Rounds with the store's WAL
    /// writes gathered (`commit_1_cpu_us`, …) alternate with rounds where they pass straight
    /// through as SQLite makes them (`…_ungathered`), in fresh databases.
    static func smallCommits(in scratch: URL) throws -> [String: Double] {
        let peer = PeerID(identityPublicKey: [UInt8](repeating: 7, count: 32))
        let commits = 300
        var samples: [String: [Double]] = [:]
        defer { privatus_wal_writes_gather(1) }
        for round in 0..<3 {
            for gathered in [true, false] {
                privatus_wal_writes_gather(gathered ? 1 : 0)
                let path = scratch.appendingPathComponent("commits-\(round)-\(gathered).sqlite").path
                let store = try Store(path: path, databaseKey: SymmetricKey(size: .bits256))
                for size in [1, 8] {
                    var number = UInt64(0)
                    let cpuBefore = Measure.processCPUSeconds()
                    let started = ContinuousClock.now
                    for _ in 0..<commits {
                        try store.append(
                            (0..<size).map { _ in
                                number += 1
                                return NewMessage(
                                    peer: peer, direction: .received, state: .delivered, sender: peer, sentAt: number,
                                    body: String(repeating: "m", count: 100))
                            })
                    }
                    let wall = (ContinuousClock.now - started).seconds
                    let cpu = Measure.processCPUSeconds() - cpuBefore
                    let suffix = gathered ? "" : "_ungathered"
                    samples["commit_\(size)_cpu_us\(suffix)", default: []].append(cpu / Double(commits) * 1e6)
                    samples["commit_\(size)_us\(suffix)", default: []].append(wall / Double(commits) * 1e6)
                }
            }
        }
        return samples.mapValues { percentile($0, 0.5) }
    }

    static func randomID() -> [UInt8] {
        SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}

/// The plaintext reference of `bench storage`: the store's schema, the same statements, no sealing.
struct RawReference {
    let pool: DatabasePool
    let checkpointer: Checkpointer
    let clock = ContinuousClock()

    init(path: String, peers: [PeerID]) throws {
        pool = try Store.makePool(path: path)
        checkpointer = try Checkpointer(pool: pool, path: path)  // as the store: checkpoints off the write path
        try pool.write { db in
            for (number, peer) in peers.enumerated() {
                try db.execute(
                    sql:
                        "INSERT INTO conversations (pk, id, conversation_index, kind, sealed_details) VALUES (?, ?, ?, 0, ?)",
                    arguments: [
                        number + 1, Data(StorageSuite.randomID()), Data(peer.bytes.prefix(16)), Data(peer.bytes),
                    ])
            }
        }
    }

    /// Inserts one batch as the store does: find each conversation by its index column, insert
    /// the rows, advance each conversation's next sequence number once. Returns the time taken.
    func insert(_ messages: [NewMessage], bodies: [Data]) throws -> Duration {
        let rows = zip(messages, bodies).map { message, body in
            (id: Data(StorageSuite.randomID()), index: Data(message.peer.bytes.prefix(16)), body: body)
        }
        return try clock.measure {
            try pool.write { db in
                let find = try db.cachedStatement(
                    sql: "SELECT pk, next_sequence FROM conversations WHERE conversation_index = ?")
                let insert = try db.cachedStatement(
                    sql: """
                        INSERT INTO messages (pk, ordinal, id, direction, state, sealed_content)
                        VALUES (?, ?, ?, 0, 3, ?)
                        """)
                // Ordinals as the store gives them out: the counter is raised a block at a time.
                let reserved =
                    try Int64.fetchOne(
                        db.cachedStatement(sql: "SELECT value FROM counters WHERE name = 'message_ordinal'")) ?? 0
                var ordinal = try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(ordinal) + 1 FROM messages")) ?? 0
                let advance = try db.cachedStatement(sql: "UPDATE conversations SET next_sequence = ? WHERE pk = ?")
                var seen: [Data: (pk: Int64, next: Int64)] = [:]
                for row in rows {
                    var conversation: (pk: Int64, next: Int64)
                    if let known = seen[row.index] {
                        conversation = known
                    } else {
                        guard let found = try Row.fetchOne(find, arguments: [row.index]) else {
                            throw StoreError.notFound
                        }
                        conversation = (found["pk"], found["next_sequence"])
                    }
                    try insert.execute(arguments: [
                        conversation.pk << 32 | conversation.next, ordinal, row.id, row.body,
                    ])
                    ordinal += 1
                    conversation.next += 1
                    seen[row.index] = conversation
                }
                for conversation in seen.values {
                    try advance.execute(arguments: [conversation.next, conversation.pk])
                }
                if ordinal > reserved {
                    try db.cachedStatement(sql: "UPDATE counters SET value = ? WHERE name = 'message_ordinal'")
                        .execute(arguments: [ordinal + 1_024])
                }
            }
            checkpointer.afterCommit()
        }
    }
}
